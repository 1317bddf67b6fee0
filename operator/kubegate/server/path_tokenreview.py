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
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from kubegate.server.auth import AUTHENTICATION, verify_credential
from kubegate.server.bodies import read_json
from kubegate.server.context import context_of
from kubegate.server.errors import not_ready, unavailable
from kubegate.settings import RESERVED_PREFIX, ServerSettings
from kubegate.verify import UNAUTHENTICATED_MESSAGE, Authentication, Unauthenticated, VerifierUnavailable

log = logging.getLogger(__name__)

PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
V1BETA1_PATH = "/apis/authentication.k8s.io/v1beta1/tokenreviews"
METHOD_EXTRA = "kubegate.dev/method"
TOKEN_ID_EXTRA = "kubegate.dev/token-id"


class _KubeObject(BaseModel):
    # Kubernetes objects tolerate fields they do not know (metadata, status, newer spec fields).
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class TokenReviewSpec(_KubeObject):
    token: str = ""
    audiences: list[Annotated[str, Field(max_length=1024)]] | None = Field(default=None, max_length=64)


class TokenReview(_KubeObject):
    api_version: Literal["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"] = Field(alias="apiVersion")
    kind: Literal["TokenReview"]
    spec: TokenReviewSpec


def register(app: web.Application) -> None:
    app.router.add_post(PATH, token_review)
    app.router.add_post(V1BETA1_PATH, token_review)


async def token_review(request: web.Request) -> web.Response:
    context = context_of(request)
    if not context.config.ready:
        # 503 rather than "not authenticated": kube-apiserver retries it and does not cache the answer.
        raise not_ready()
    review = await read_json(request, TokenReview)
    try:
        authentication = await verify_credential(context, review.spec.token, surface="tokenreview")
    except Unauthenticated:
        return _answer(review, {"authenticated": False, "error": UNAUTHENTICATED_MESSAGE})
    except VerifierUnavailable as exc:
        # Not "not authenticated": that answer would be cached; kube-apiserver retries a 503.
        raise unavailable(f"cannot verify the token now: {exc}") from None
    request[AUTHENTICATION] = authentication
    status = review_status(context.settings, authentication, review.spec.audiences)
    return _answer(review, status)


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


def _answer(review: TokenReview, status: dict[str, Any]) -> web.Response:
    body = {"apiVersion": review.api_version, "kind": "TokenReview", "status": status}
    return web.Response(body=json.dumps(body).encode("utf-8"), content_type="application/json")
