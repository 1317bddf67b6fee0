"""The TokenReview webhook for kube-apiserver (`--authentication-token-webhook-config-file`) and Pinniped.

Follows Kubernetes' webhook token authentication contract: a `TokenReview` in `authentication.k8s.io/v1`
or `v1beta1` comes in, the same apiVersion and kind go out with `status`. A bad token is a normal answer
(`authenticated: false` with an `error`), never a 5xx; only a malformed review gets a 400.

Identity mapping: the username and every group get their configured prefix (default `kubegate:`), so a
static token's identity reads `kubegate:statictoken:<namespace>:<name>`. A name starting with `system:`
is never returned: such a review is refused.

Audiences: a kubegate token is valid for the audiences in `--webhook-audiences`; when that is unset, for
any audience a review asks for. When a review names audiences, `status.audiences` is the intersection,
and an empty intersection refuses the token.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal, get_args

from aiohttp import web
from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from kubegate.server.auth import AUTHENTICATION, verify_credential
from kubegate.server.bodies import json_body
from kubegate.server.context import CONTEXT, context_of
from kubegate.server.errors import not_ready, unavailable
from kubegate.server.routing import add_route
from kubegate.settings import RESERVED_PREFIX, ServerSettings
from kubegate.verify import UNAUTHENTICATED_MESSAGE, Authentication, Unauthenticated, VerifierUnavailable

log = logging.getLogger(__name__)

PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
V1BETA1_PATH = "/apis/authentication.k8s.io/v1beta1/tokenreviews"
METHOD_EXTRA = "kubegate.dev/method"
TOKEN_ID_EXTRA = "kubegate.dev/token-id"
MAX_DERIVED_ANSWERS = 16
"""Encoded statuses kept per credential; kube-apiserver sends one set of audiences (its --api-audiences)."""


ApiVersion = Literal["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"]
API_VERSIONS: tuple[ApiVersion, ...] = get_args(ApiVersion)


# The review as typed dicts, not models: validated by pydantic all the same (unknown fields such as metadata,
# status or newer spec fields are ignored, as Kubernetes objects tolerate them), without building objects
# on the webhook's hot path.


class TokenReviewSpec(TypedDict, total=False):
    token: str
    """Absent: the empty token, refused like any unknown one."""
    audiences: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=64)] | None


class TokenReview(TypedDict):
    apiVersion: ApiVersion
    kind: Literal["TokenReview"]
    spec: TokenReviewSpec


TOKEN_REVIEW: TypeAdapter[TokenReview] = TypeAdapter(TokenReview)


def register(app: web.Application) -> None:
    handler = TokenReviewer(app[CONTEXT].settings).review
    add_route(app, "POST", PATH, handler)
    add_route(app, "POST", V1BETA1_PATH, handler)


class TokenReviewer:
    """Answers reviews. kube-apiserver asks about the same credentials over and over, so the `status` for
    one is encoded once per audiences and kept with its Authentication (see `Authentication.derived`)."""

    def __init__(self, settings: ServerSettings) -> None:
        self._settings = settings

    async def review(self, request: web.Request) -> web.Response:
        context = context_of(request)
        if not context.config.ready:
            # 503 rather than "not authenticated": kube-apiserver retries it and does not cache the answer.
            raise not_ready()
        review = json_body(request, await request.read(), TOKEN_REVIEW)
        api_version, spec = review["apiVersion"], review["spec"]
        try:
            authentication = await verify_credential(context, spec.get("token", ""), surface="tokenreview")
        except Unauthenticated:
            return _answer(api_version, _UNAUTHENTICATED)
        except VerifierUnavailable as exc:
            # Not "not authenticated": that answer would be cached; kube-apiserver retries a 503.
            raise unavailable(f"cannot verify the token now: {exc}") from None
        request[AUTHENTICATION] = authentication
        audiences = spec.get("audiences")
        derived = authentication.derived
        key = self if audiences is None else (self, tuple(audiences))
        status: bytes | None = derived.get(key)
        if status is None:
            status = _encode(review_status(self._settings, authentication, audiences))
            if len(derived) < MAX_DERIVED_ANSWERS:  # each request may name other audiences
                derived[key] = status
        return _answer(api_version, status)


def review_status(
    settings: ServerSettings, authentication: Authentication, requested_audiences: list[str] | None
) -> dict[str, Any]:
    """The `status` of a review for a verified credential. Pure."""
    identity = authentication.identity
    username = settings.webhook_username_prefix + identity.username
    groups = [settings.webhook_groups_prefix + group for group in identity.groups]
    reserved = [name for name in (username, *groups) if name.startswith(RESERVED_PREFIX)]
    if reserved:
        log.warning(
            "TokenReview: refused token %s: it would map to the reserved name(s) %s; give its groups other names "
            "or set --webhook-groups-prefix",
            authentication.id,
            ", ".join(reserved),
        )
        return {"authenticated": False, "error": f"the token maps to a name starting with {RESERVED_PREFIX!r}"}
    status: dict[str, Any] = {
        "authenticated": True,
        "user": {
            "username": username,
            "uid": identity.uid,
            "groups": groups,
            "extra": {METHOD_EXTRA: [authentication.method.value], TOKEN_ID_EXTRA: [authentication.id]},
        },
    }
    if requested_audiences:
        valid_for = settings.webhook_audiences
        granted = [a for a in requested_audiences if a in valid_for] if valid_for else list(requested_audiences)
        if not granted:
            return {
                "authenticated": False,
                "error": f"kubegate tokens are valid only for the audiences {', '.join(valid_for)}",
            }
        status["audiences"] = granted
    return status


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


_UNAUTHENTICATED = _encode({"authenticated": False, "error": UNAUTHENTICATED_MESSAGE})
_ANSWER_STARTS = {
    version: b'{"apiVersion":"%s","kind":"TokenReview","status":' % version.encode() for version in API_VERSIONS
}


def _answer(api_version: ApiVersion, status: bytes) -> web.Response:
    """The review echoed in its own apiVersion, with `status` (encoded JSON)."""
    return web.Response(body=_ANSWER_STARTS[api_version] + status + b"}", content_type="application/json")
