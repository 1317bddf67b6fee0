"""Routes as declarations: method, path, handler, and who may call it.

Every route says whether it is public or needs an authenticated caller (with the groups it requires), as
Flipt's middleware lists what skips authentication; the adapter enforces the declaration before the handler
runs, so a handler cannot forget the check, and `tests/unit/test_web_route_declarations.py` lists every
route of the server with its declaration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kubegate.verify.requirements import Requirement
from kubegate.web.request import Request
from kubegate.web.responses import Response

Handler = Callable[[Request], Awaitable[Response]]
AnswerNow = Callable[[Request], Response | None]
"""The synchronous form of a hot route's handler: its answer when it needs no waiting, else None (nothing
done, nothing counted), and then the handler runs."""


@dataclass(frozen=True)
class Public:
    """Anyone may call it; a credential it needs comes in its body (the exchange, the TokenReview webhook)
    or it needs none (health, discovery)."""

    def describe(self) -> str:
        return "public"


@dataclass(frozen=True)
class Authenticated:
    """The caller's bearer token or cookie must verify, and satisfy `requirement` when one is given."""

    surface: str = "api"
    """The `surface` label of the verification metrics."""
    requirement: Requirement | None = None
    """What the caller must satisfy (groups, claims); None: any authenticated caller."""
    action: str = ""
    """What the route does, for the 403 message ("creating tokens requires ...")."""

    def describe(self) -> str:
        if self.requirement is None:
            return "authenticated"
        return f"authenticated, {self.requirement.describe()}"


Access = Public | Authenticated


@dataclass(frozen=True)
class Route:
    method: str
    """An HTTP method, or `*` for any (forward auth takes the proxied request's)."""
    path: str
    """A path template: `{name}` matches one segment, `{name:.*}` the rest."""
    handler: Handler
    access: Access
    reads_body: bool = False
    """Read the body (bounded by the server's limit) before the handler runs, into `Request.body`."""
    now: AnswerNow | None = None
    """For the routes proxies and kube-apiserver call for every request: tried first, it answers a credential
    verified from memory without a coroutine or a task (a tenth of the CPU of such an answer)."""
