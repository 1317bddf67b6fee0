"""The public half of the client-token signing keys: all a verifier of client tokens needs.

Fed by whoever reads the keys: in the server, its watch of the signing-key Secret (the server mints client
tokens, so it may read the private half; see `client_tokens/key_watch.py`); in a process that only
verifies, a source of the published JWKS. The last good set stays when its source goes away.
"""

from __future__ import annotations

from kubegate.contracts.jwks import PublicKeySet


class PublicKeys:
    def __init__(self) -> None:
        self._current: PublicKeySet | None = None

    def current(self) -> PublicKeySet | None:
        """The keys to verify with; None until the first set arrived. The same object while unchanged."""
        return self._current

    def publish(self, keys: PublicKeySet) -> None:
        self._current = keys

    @property
    def loaded(self) -> bool:
        return self._current is not None
