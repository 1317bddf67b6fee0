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

import msgspec
from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from kubegate.settings import RESERVED_PREFIX, ServerSettings
from kubegate.verify import UNAUTHENTICATED_MESSAGE, Authentication, Unauthenticated, VerifierUnavailable
from kubegate.verify.errors import RequirementFailed
from kubegate.web.authenticate import Authenticator
from kubegate.web.bodies import json_body
from kubegate.web.errors import not_ready, unavailable
from kubegate.web.request import Request
from kubegate.web.responses import JSON, Response
from kubegate.web.routes import Public, Route

log = logging.getLogger(__name__)

PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
V1BETA1_PATH = "/apis/authentication.k8s.io/v1beta1/tokenreviews"
METHOD_EXTRA = "kubegate.dev/method"
TOKEN_ID_EXTRA = "kubegate.dev/token-id"
SURFACE = "tokenreview"
"""The `surface` label of the verification metrics."""
MAX_AUDIENCES = 64
MAX_DERIVED_ANSWERS = 16
"""Answers kept per credential; kube-apiserver sends one apiVersion and one set of audiences (its
--api-audiences)."""


ApiVersion = Literal["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"]
API_VERSIONS: tuple[ApiVersion, ...] = get_args(ApiVersion)


# The review as typed dicts, not models: validated by pydantic all the same (unknown fields such as metadata,
# status or newer spec fields are ignored, as Kubernetes objects tolerate them), without building objects
# on the webhook's hot path.


class TokenReviewSpec(TypedDict, total=False):
    token: str
    """Absent: the empty token, refused like any unknown one."""
    audiences: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=MAX_AUDIENCES)] | None


class TokenReview(TypedDict):
    apiVersion: ApiVersion
    kind: Literal["TokenReview"]
    spec: TokenReviewSpec


TOKEN_REVIEW: TypeAdapter[TokenReview] = TypeAdapter(TokenReview)


class _FastSpec(msgspec.Struct):
    token: str = ""
    audiences: list[Annotated[str, msgspec.Meta(max_length=1024)]] | None = None


class _FastReview(msgspec.Struct):
    apiVersion: ApiVersion  # noqa: N815 - the wire's name
    kind: Literal["TokenReview"]
    spec: _FastSpec


_FAST_REVIEW = msgspec.json.Decoder(_FastReview)
"""The same schema as TOKEN_REVIEW for msgspec, which decodes a valid review in a fifth of pydantic's time
(bench/README.md, "The server's stack"); a review it refuses is read again by TOKEN_REVIEW, whose 400 says
which field is wrong. tests/unit/test_tokenreview_decoding.py holds the two to the same verdicts."""


def decode_review(request: Request) -> tuple[ApiVersion, str, list[str] | None]:
    """apiVersion, token and audiences of the review in the body; 400 or 415 when it is no valid review."""
    try:
        if request.headers.get("Content-Type") == JSON:
            fast = _FAST_REVIEW.decode(request.body)
            audiences = fast.spec.audiences
            if audiences is None or len(audiences) <= MAX_AUDIENCES:
                return fast.apiVersion, fast.spec.token, audiences
    except msgspec.DecodeError:
        pass  # the slow path says what is wrong
    review = json_body(request, TOKEN_REVIEW)
    spec = review["spec"]
    return review["apiVersion"], spec.get("token", ""), spec.get("audiences")


class TokenReviewWebhook:
    """Answers reviews. kube-apiserver asks about the same credentials over and over, so the `status` for
    one is encoded once per audiences and kept with its Authentication (see `Authentication.derived`)."""

    def __init__(self, settings: ServerSettings, authenticator: Authenticator) -> None:
        self._settings = settings
        self._authenticator = authenticator

    def routes(self) -> list[Route]:
        # Public: kube-apiserver (or Pinniped) sends the credential to review in the body.
        return [
            Route("POST", PATH, self.review, Public(), reads_body=True, now=self.review_now),
            Route("POST", V1BETA1_PATH, self.review, Public(), reads_body=True, now=self.review_now),
        ]

    def review_now(self, request: Request) -> Response | None:
        """The answer for a credential verified from memory (a static token, a seen OIDC token); None for any
        other, having counted nothing: then `review` answers."""
        api_version, token, audiences = self._read(request)
        try:
            authentication = self._authenticator.verify_credential_now(token, surface=SURFACE)
        except (Unauthenticated, RequirementFailed) as exc:
            return _refused(api_version, exc)
        if authentication is None:
            return None
        return self._authenticated(request, api_version, authentication, audiences)

    async def review(self, request: Request) -> Response:
        api_version, token, audiences = self._read(request)
        try:
            authentication = await self._authenticator.verify_credential(token, surface=SURFACE)
        except (Unauthenticated, RequirementFailed) as exc:
            return _refused(api_version, exc)
        except VerifierUnavailable as exc:
            # Not "not authenticated": that answer would be cached; kube-apiserver retries a 503.
            raise unavailable(f"cannot verify the token now: {exc}") from None
        return self._authenticated(request, api_version, authentication, audiences)

    def _read(self, request: Request) -> tuple[ApiVersion, str, list[str] | None]:
        if not self._authenticator.ready():
            # 503 rather than "not authenticated": kube-apiserver retries it and does not cache the answer.
            raise not_ready()
        return decode_review(request)

    def _authenticated(
        self, request: Request, api_version: ApiVersion, authentication: Authentication, audiences: list[str] | None
    ) -> Response:
        request.authenticated_as(authentication)
        derived = authentication.derived
        key = (self, api_version) if audiences is None else (self, api_version, tuple(audiences))
        answer: Response | None = derived.get(key)
        if answer is None:
            answer = _answer(api_version, _encode(review_status(self._settings, authentication, audiences)))
            if len(derived) < MAX_DERIVED_ANSWERS:  # each request may name other audiences
                derived[key] = answer
        return answer


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


def _refused(api_version: ApiVersion, exc: Unauthenticated | RequirementFailed) -> Response:
    if isinstance(exc, RequirementFailed):
        # Authenticated, but refused by its provider's requirements: kube-apiserver shows the reason.
        return _answer(api_version, _encode({"authenticated": False, "error": exc.message}))
    return _answer(api_version, _UNAUTHENTICATED)


def _answer(api_version: ApiVersion, status: bytes) -> Response:
    """The review echoed in its own apiVersion, with `status` (encoded JSON)."""
    return Response(body=_ANSWER_STARTS[api_version] + status + b"}", content_type=JSON)
