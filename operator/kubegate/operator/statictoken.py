"""StaticToken reconciliation: the token Secret, rotation, expiry, status and validation-config entries.

Plaintext tokens exist here only between generation and the Secret write (and, for the bootstrap token,
the one start-up log line). Everything else sees token ids and SHA-256 hashes. A StaticToken with
`spec.tokenHash` (created through the server's API) has no Secret at all: its hash is published as it is,
with the resource's uid as the token id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from kubegate.contracts import timestamps, token_secret
from kubegate.contracts.api_paths import path_for
from kubegate.contracts.timestamps import format_time
from kubegate.contracts.token_format import MAX_TOKEN_LENGTH, generate_token, hash_token, new_token_id
from kubegate.contracts.token_secret import (
    HANDLED_ROTATE_ANNOTATION,
    MIN_BROUGHT_TOKEN_LENGTH,
    HashedToken,
    PreviousToken,
)
from kubegate.kube import AlreadyExists, ApiUnavailable, Conflict, KubeApi, NotFound
from kubegate.operator import conditions, token_plan
from kubegate.operator.conditions import Outcome
from kubegate.operator.config_writer import ConfigWriter
from kubegate.operator.events import EventPoster
from kubegate.operator.status import Retry, StatusWriter, read_live
from kubegate.resources.statictoken import StaticToken, StaticTokenSpec
from kubegate.settings import BOOTSTRAP_NAME, OperatorSettings
from kubegate.validation_config.model import TokenEntry
from kubegate.verify.classify import Kind, classify

log = logging.getLogger(__name__)
bootstrap_log = logging.getLogger("kubegate.bootstrap")

BOOTSTRAP_LABEL = "kubegate.dev/bootstrap"
# How long a reconcile waits for the validation config to hold its hashes before it gives up and retries.
CONFIG_WAIT = 30.0
# Version conflicts are answered at once by reading the objects again, this many times, before a backoff.
CONFLICT_ATTEMPTS = 3


@dataclass(frozen=True, kw_only=True)
class Reconciled:
    outcome: Outcome
    wake: datetime | None
    """When something changes by itself next (expiry, rotation, end of overlap)."""
    recheck_secret: bool = False
    """The token lives in a Secret kubegate does not own: look at it again now and then."""
    resource_version: str | None = None
    """The StaticToken's version once reconciled (after the status write, if there was one)."""


class _Stalled(Exception):  # noqa: N818 - internal control flow
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


@dataclass
class _Tokens:
    current: HashedToken
    previous: PreviousToken | None
    secret_name: str | None
    """None: the token is known only by spec.tokenHash."""
    rotated_at: datetime | None = None
    handled_rotate: str | None = None


class TokenReconciler:
    """Brings one StaticToken's Secret, entries and status in line with its spec."""

    def __init__(
        self,
        *,
        client: KubeApi,
        settings: OperatorSettings,
        writer: ConfigWriter,
        events: EventPoster,
        clock: Callable[[], datetime] = timestamps.now,
        config_wait: float = CONFIG_WAIT,
    ) -> None:
        self._client = client
        self._settings = settings
        self._writer = writer
        self._events = events
        self._status = StatusWriter(kind=StaticToken, client=client, events=events)
        self._clock = clock
        self._config_wait = config_wait
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def forget(self, namespace: str, name: str, *, timeout: float = 30.0) -> bool:
        """Remove a deleted StaticToken's tokens from the validation config; True once written out."""
        key = (namespace, name)
        async with self._lock(key):
            self._writer.registry.remove(key)
            self._writer.changed()
        self._locks.pop(key, None)
        return await self._writer.wait_written(key, timeout=timeout)

    async def reconcile(self, namespace: str, name: str, *, body: dict[str, Any] | None = None) -> Reconciled | None:
        """Reconcile one StaticToken; None when it is gone or being deleted.

        `body` is the object as a watch just delivered it (the watch orders it after our own earlier
        writes); without it the object is read. Either way the token itself is judged by its Secret, read
        afresh under a per-token lock, so a copy of the object older than our last status write can cost
        a status write at most, never a second rotation.
        A write refused for a version conflict (someone, or our own write whose reply was lost, changed the
        object since we read it) starts again at once from fresh reads: every step recognises work already
        done, so nothing is done twice.
        Raises Retry on transient failures; bad input gives a Stalled outcome instead.
        """
        key = (namespace, name)
        async with self._lock(key):
            conflict = ""
            for attempt in range(CONFLICT_ATTEMPTS):
                if body is None or attempt > 0:
                    body = await read_live(self._client, StaticToken.path(namespace=namespace, name=name))
                if body is None or body["metadata"].get("deletionTimestamp"):
                    return None
                try:
                    # A token never reconciled has no Secret of ours yet: create it without looking first.
                    # If one is there after all, the create fails and the next attempt reads it.
                    return await self._reconcile(body, key, expect_no_secret=attempt == 0 and not body.get("status"))
                except Conflict as exc:
                    conflict = str(exc)
                    log.debug("StaticToken %s/%s: %s; reading it again", namespace, name, conflict)
            raise Retry(conflict)

    async def _reconcile(self, body: dict[str, Any], key: tuple[str, str], *, expect_no_secret: bool) -> Reconciled:
        meta = body["metadata"]
        status: dict[str, Any] = body.get("status") or {}
        now = self._clock()
        try:
            resource = StaticToken.from_wire(body)
            assert isinstance(resource, StaticToken)
            spec = resource.spec
        except (ValidationError, ValueError) as exc:
            summary = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in (exc.errors() if isinstance(exc, ValidationError) else [])
            ) or str(exc)
            return await self._finish_stalled(
                body, key, conditions.stalled("InvalidSpec", f"the spec is invalid: {summary}")
            )
        try:
            if spec.secret_ref is not None:
                tokens = await self._brought_token(body, spec, status)
            elif spec.token_hash is not None:
                tokens = _hashed_token(body, spec.token_hash)
            else:
                tokens = await self._owned_token(body, spec, status, now, expect_no_secret=expect_no_secret)
        except _Stalled as stalled:
            return await self._finish_stalled(body, key, stalled.outcome)
        except ApiUnavailable as exc:
            raise Retry(str(exc)) from exc

        if tokens.previous is not None and tokens.secret_name is not None and now >= tokens.previous.expires_at:
            await self._drop_previous(meta["namespace"], tokens.secret_name)
            tokens.previous = None

        # Ready is written only once the servers can accept the token: after its hash is published.
        await self._publish(key, _entries(key, spec, tokens.current, tokens.previous, now))

        expiry = token_plan.token_expiry(spec, tokens.current.created_at)
        if expiry is not None and now >= expiry:
            outcome = conditions.expired(f"the token expired at {format_time(expiry)}: {_revive_hint(spec)}")
            delete_at = token_plan.deletion_time(expiry, self._settings.delete_expired_after)
            if delete_at is not None and now >= delete_at:
                await self._delete_expired(body)
        else:
            until = f" until {format_time(expiry)}" if expiry is not None else ""
            outcome = conditions.ready(f"token {tokens.current.token_id} is valid{until}")

        new_status = {
            "tokenId": tokens.current.token_id,
            "secretName": tokens.secret_name,
            "expiresAt": format_time(expiry) if expiry is not None else None,
            "createdAt": status.get("createdAt") or format_time(tokens.current.created_at),
            "rotatedAt": format_time(tokens.rotated_at) if tokens.rotated_at else status.get("rotatedAt"),
            "handledRotateRequest": tokens.handled_rotate,
        }
        version = await self._status.write(body, outcome, new_status, now=now)
        wake = token_plan.next_wake(
            spec=spec,
            current=tokens.current,
            previous=tokens.previous,
            delete_expired_after=self._settings.delete_expired_after,
            now=now,
        )
        return Reconciled(
            outcome=outcome, wake=wake, recheck_secret=spec.secret_ref is not None, resource_version=version
        )

    # --- tokens kubegate generates and owns -------------------------------------------------------

    async def _owned_token(
        self,
        body: dict[str, Any],
        spec: StaticTokenSpec,
        status: dict[str, Any],
        now: datetime,
        *,
        expect_no_secret: bool,
    ) -> _Tokens:
        meta = body["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        secret_name = spec.secret_name or name
        rotate_annotation = (meta.get("annotations") or {}).get(token_plan.ROTATE_ANNOTATION)

        secret = None if expect_no_secret else await self._get_secret(namespace, secret_name)
        if secret is not None and not token_secret.is_owned_by(secret, uid):
            raise _Stalled(
                conditions.stalled(
                    "SecretConflict",
                    f"Secret {secret_name} already exists and does not belong to this StaticToken: "
                    "choose another spec.secretName, delete that Secret, or bring its token with spec.secretRef",
                )
            )
        if secret is None:
            secret = await self._move_secret(body, status.get("secretName"), secret_name)
        handled = _handled_request(secret, status)
        generated = False
        if secret is None or token_secret.stored_token(secret) is None:
            if spec.expires_at is not None and spec.expires_at <= now:
                raise _Stalled(
                    conditions.stalled(
                        "ExpiryInPast",
                        f"spec.expiresAt {format_time(spec.expires_at)} is in the past: set a future time, or use "
                        "spec.ttl, to get a token",
                    )
                )
            secret = await self._issue(
                body, spec, secret_name, secret, rotate_annotation, now, keep_published=expect_no_secret
            )
            generated = True
            handled = rotate_annotation
            if status.get("tokenId"):
                await self._events.post(
                    body,
                    type_="Warning",
                    reason="SecretRecreated",
                    message=f"the Secret {secret_name} that held token {status['tokenId']} was deleted or "
                    f"emptied; a new token ({token_secret.stored_token_id(secret)}) was generated",
                )

        current = token_secret.current_token(secret, now=now)
        previous = token_secret.previous_token(secret)
        tokens = _Tokens(current=current, previous=previous, secret_name=secret_name, handled_rotate=handled)
        if generated:
            return tokens

        reason = token_plan.rotation_reason(
            spec=spec, current=current, annotation=rotate_annotation, handled_annotation=handled, now=now
        )
        if reason is not None:
            tokens = await self._rotate(body, spec, secret, current, previous, rotate_annotation, now)
            tokens.handled_rotate = rotate_annotation
            await self._events.post(
                body,
                type_="Normal",
                reason="Rotated",
                message=f"token {current.token_id} was replaced by {tokens.current.token_id}: {reason}",
            )
        return tokens

    async def _issue(  # noqa: PLR0917 - one call site, each argument says what the token is for
        self,
        body: dict[str, Any],
        spec: StaticTokenSpec,
        secret_name: str,
        existing: dict[str, Any] | None,
        rotate_request: str | None,
        now: datetime,
        *,
        keep_published: bool,
    ) -> dict[str, Any]:
        """Generate a token and store it; the only place a generated plaintext token is handled.

        `keep_published`: the Secret was not read, and may hold a value after all (a crash after its write):
        what is published stays so beside the new value, until the next attempt reads the Secret.
        """
        meta = body["metadata"]
        token = generate_token(self._settings.token_prefix)
        token_id = new_token_id()
        # Published before it is stored: whoever reads the Secret holds a value the servers accept. A crash
        # in between leaves a hash of a value nobody ever had; the next run replaces it.
        issued = HashedToken(token_id=token_id, sha256=hash_token(token), created_at=now)
        key = _key(body)
        kept = self._writer.registry.get(key) if keep_published else ()
        await self._publish(key, _entries(key, spec, issued, None, now) + tuple(kept))
        secret = token_secret.token_secret(
            owner=body, name=secret_name, token=token, token_id=token_id, created_at=now, rotate_request=rotate_request
        )
        collection = path_for(plural="secrets", namespace=meta["namespace"])
        try:
            if existing is None:
                stored = await self._client.create(collection, secret)
            else:
                secret["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
                stored = await self._client.replace(f"{collection}/{secret_name}", secret)
        except AlreadyExists:
            # Another reconcile (or an earlier run that died before writing status) stored a token:
            # use that one rather than a second token.
            raise Conflict(status=409, reason="AlreadyExists", message=f"Secret {secret_name} appeared") from None
        log.info("generated token %s for StaticToken %s/%s", token_id, meta["namespace"], meta["name"])
        if self._is_bootstrap(body) and self._settings.bootstrap_log_token:
            bootstrap_log.info("access token created", extra={"client_token": token})
        return stored

    async def _rotate(  # noqa: PLR0917 - one call site, each argument says what the token is for
        self,
        body: dict[str, Any],
        spec: StaticTokenSpec,
        secret: dict[str, Any],
        current: HashedToken,
        replaced_previous: PreviousToken | None,
        rotate_request: str | None,
        now: datetime,
    ) -> _Tokens:
        meta = body["metadata"]
        secret_name = secret["metadata"]["name"]
        token = generate_token(self._settings.token_prefix)
        token_id = new_token_id()
        previous_until = token_plan.previous_expiry(spec, current, now)
        previous = None
        if previous_until is not None:
            previous = PreviousToken(
                token_id=current.token_id,
                sha256=current.sha256,
                created_at=current.created_at,
                expires_at=previous_until,
            )
        replacement = token_secret.token_secret(
            owner=body,
            name=secret_name,
            token=token,
            token_id=token_id,
            created_at=now,
            rotate_request=rotate_request,
            previous=previous,
        )
        replacement["metadata"]["resourceVersion"] = secret["metadata"]["resourceVersion"]
        # The new value is published before the Secret holds it, and the values valid now stay published until
        # it does: a consumer that reads the Secret at any moment holds a value the servers accept.
        new = HashedToken(token_id=token_id, sha256=hash_token(token), created_at=now)
        key = _key(body)
        await self._publish(
            key,
            _entries(key, spec, new, previous, now) + _entries(key, spec, current, replaced_previous, now),
        )
        collection = path_for(plural="secrets", namespace=meta["namespace"])
        stored = await self._client.replace(f"{collection}/{secret_name}", replacement)
        log.info(
            "rotated StaticToken %s/%s: token %s replaces %s",
            meta["namespace"],
            meta["name"],
            token_id,
            current.token_id,
        )
        return _Tokens(
            current=token_secret.current_token(stored, now=now),
            previous=previous,
            secret_name=secret_name,
            rotated_at=now,
        )

    async def _move_secret(self, body: dict[str, Any], old_name: str | None, new_name: str) -> dict[str, Any] | None:
        """spec.secretName changed: carry the same token over to the new Secret and remove the old one."""
        meta = body["metadata"]
        if not old_name or old_name == new_name:
            return None
        old = await self._get_secret(meta["namespace"], old_name)
        if old is None or not token_secret.is_owned_by(old, meta["uid"]) or token_secret.stored_token(old) is None:
            return None
        moved = token_secret.moved_token_secret(old, name=new_name)
        collection = path_for(plural="secrets", namespace=meta["namespace"])
        try:
            stored = await self._client.create(collection, moved)
        except AlreadyExists:
            raise Conflict(status=409, reason="AlreadyExists", message=f"Secret {new_name} appeared") from None
        with contextlib.suppress(NotFound):
            await self._client.delete(f"{collection}/{old_name}")
        await self._events.post(
            body,
            type_="Normal",
            reason="SecretMoved",
            message=f"the token moved from Secret {old_name} to {new_name}; the token is unchanged",
        )
        return stored

    async def _drop_previous(self, namespace: str, secret_name: str) -> None:
        patch = token_secret.clear_previous_patch()
        with contextlib.suppress(NotFound):
            await self._client.patch(path_for(plural="secrets", namespace=namespace, name=secret_name), patch)

    # --- tokens brought in an existing Secret ------------------------------------------------------

    async def _brought_token(self, body: dict[str, Any], spec: StaticTokenSpec, status: dict[str, Any]) -> _Tokens:
        meta = body["metadata"]
        ref = spec.secret_ref
        assert ref is not None
        secret = await self._get_secret(meta["namespace"], ref.name)
        if secret is None:
            raise _Stalled(
                conditions.stalled(
                    "SecretNotFound",
                    f"spec.secretRef names Secret {ref.name}, which does not exist in namespace "
                    f"{meta['namespace']}: create it with the token under key {ref.key!r}, or remove spec.secretRef",
                )
            )
        raw = (secret.get("data") or {}).get(ref.key)
        if raw is None:
            raise _Stalled(
                conditions.stalled(
                    "SecretKeyMissing",
                    f"Secret {ref.name} has no key {ref.key!r}: add the token under that key, or set "
                    "spec.secretRef.key to the key that holds it",
                )
            )
        token = token_secret.decode_token(raw)
        if token is None:
            raise _Stalled(
                conditions.stalled(
                    "InvalidToken",
                    f"key {ref.key!r} of Secret {ref.name} does not hold a usable token: it must be "
                    f"{MIN_BROUGHT_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH} printable ASCII characters without spaces",
                )
            )
        if classify(token, client_issuer=None, oidc_issuers=()).kind is not Kind.STATIC:
            # The server would take it for a JWT (RFC 8725 3.12: kinds are told apart by shape) and never
            # look it up as a static token.
            raise _Stalled(
                conditions.stalled(
                    "InvalidToken",
                    f"key {ref.key!r} of Secret {ref.name} holds a JWT-shaped value, which kubegate verifies as "
                    "a JWT and never as a static token: use an opaque random token",
                )
            )
        sha = hash_token(token)
        key = (meta["namespace"], meta["name"])
        known = next((e for e in self._writer.registry.get(key) if e.sha256 == sha), None)
        created = timestamps.parse_time(status.get("createdAt")) or self._clock()
        if known is not None:
            token_id, created = known.token_id, known.created_at
        elif status.get("tokenId") and not self._writer.registry.get(key):
            token_id = str(status["tokenId"])
        else:
            token_id = new_token_id()
        current = HashedToken(token_id=token_id, sha256=sha, created_at=created)
        return _Tokens(current=current, previous=None, secret_name=ref.name)

    # --- shared -------------------------------------------------------------------------------------

    async def _publish(self, key: tuple[str, str], entries: tuple[TokenEntry, ...]) -> None:
        """Make `entries` the published entries of one StaticToken; return once the servers can read them."""
        self._writer.registry.set(key, _unique(entries))
        self._writer.changed()
        if not await self._writer.wait_written(key, timeout=self._config_wait):
            raise Retry(f"the validation config did not take the hashes of {key[0]}/{key[1]} in {self._config_wait}s")

    async def _finish_stalled(self, body: dict[str, Any], key: tuple[str, str], outcome: Outcome) -> Reconciled:
        # Also withdraws a value published for a Secret the reconcile then found was not its own.
        await self._publish(key, ())
        status = body.get("status") or {}
        fields = {k: status.get(k) for k in _TOKEN_STATUS_KEYS}
        version = await self._status.write(body, outcome, fields, now=self._clock())
        return Reconciled(outcome=outcome, wake=None, resource_version=version)

    async def _delete_expired(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        await self._events.post(
            body,
            type_="Normal",
            reason="DeletingExpired",
            message=f"deleting: expired more than {self._settings.delete_expired_after} ago",
        )
        path = StaticToken.path(namespace=meta["namespace"], name=meta["name"])
        with contextlib.suppress(NotFound):
            await self._client.delete(path)

    async def _get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._client.get(path_for(plural="secrets", namespace=namespace, name=name))
        except NotFound:
            return None

    def _is_bootstrap(self, body: dict[str, Any]) -> bool:
        meta = body["metadata"]
        return (
            meta["name"] == BOOTSTRAP_NAME
            and meta["namespace"] == self._settings.operator_namespace
            and (meta.get("labels") or {}).get(BOOTSTRAP_LABEL) == "true"
        )


def _hashed_token(body: dict[str, Any], token_hash: str) -> _Tokens:
    """The token of a StaticToken known only by its hash: the server that created the resource chose the
    token, holds nothing else, and already answered with metadata.uid as its id and the resource's creation as
    its own, so the published entry agrees with that answer."""
    meta = body["metadata"]
    created = timestamps.parse_time(meta.get("creationTimestamp"))
    if created is None:
        raise _Stalled(conditions.stalled("InvalidSpec", "metadata.creationTimestamp is missing"))
    return _Tokens(
        current=HashedToken(token_id=meta["uid"], sha256=token_hash, created_at=created),
        previous=None,
        secret_name=None,
    )


def _revive_hint(spec: StaticTokenSpec) -> str:
    """What brings an expired token back: only what changes its expiry."""
    if spec.expires_at is not None:
        return "set a later spec.expiresAt, or delete this StaticToken"
    if spec.secret_ref is not None or spec.token_hash is not None:
        return "set a longer spec.ttl, or delete this StaticToken"
    # A rotation issues a new token, whose ttl starts again.
    return (
        f"set a longer spec.ttl, rotate it with the {token_plan.ROTATE_ANNOTATION} annotation, "
        "or delete this StaticToken"
    )


def _key(body: dict[str, Any]) -> tuple[str, str]:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def _entries(
    key: tuple[str, str],
    spec: StaticTokenSpec,
    current: HashedToken,
    previous: PreviousToken | None,
    now: datetime,
) -> tuple[TokenEntry, ...]:
    return token_plan.entries(namespace=key[0], name=key[1], spec=spec, current=current, previous=previous, now=now)


def _unique(entries: tuple[TokenEntry, ...]) -> tuple[TokenEntry, ...]:
    """One entry per hash, the first: during a rotation the replaced token appears as current and previous."""
    by_hash: dict[str, TokenEntry] = {}
    for entry in entries:
        by_hash.setdefault(entry.sha256, entry)
    return tuple(by_hash.values())


def _handled_request(secret: dict[str, Any] | None, status: dict[str, Any]) -> str | None:
    """The rotation request the Secret's value answers; from status for a Secret an older version wrote."""
    annotations = ((secret or {}).get("metadata") or {}).get("annotations") or {}
    if HANDLED_ROTATE_ANNOTATION in annotations:
        return str(annotations[HANDLED_ROTATE_ANNOTATION])
    return None if secret is None else status.get("handledRotateRequest")


_TOKEN_STATUS_KEYS = ("tokenId", "secretName", "expiresAt", "createdAt", "rotatedAt", "handledRotateRequest")
