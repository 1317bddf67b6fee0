import base64
import hashlib
import hmac
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet as JoseKeySet

from kubegate.client_tokens import keys
from kubegate.client_tokens.key_watch import SigningKeys
from kubegate.client_tokens.mint import mint
from kubegate.contracts.authentication import Method
from kubegate.contracts.jwks import PublicKeySet, es256_keys
from kubegate.verify import client_tokens as verify_client_tokens
from kubegate.verify.client_tokens import JwksClientTokenVerifier
from kubegate.verify.errors import Unauthenticated, VerifierUnavailable

T0 = datetime(2026, 6, 1, tzinfo=UTC)
ISSUER, AUDIENCE = "https://kubegate.example", "kubegate"


def keyset(lifetime: timedelta = timedelta(hours=1)) -> keys.KeySet:
    return keys.initial(T0, max_token_lifetime=lifetime)


def token(ks: keys.KeySet, *, key: keys.SigningKey | None = None, **overrides: object) -> str:
    args: dict[str, object] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "subject": "serviceaccount:apps:deployer",
        "uid": "sa-uid",
        "token_id": "tid-1",
        "method": Method.KUBERNETES.value,
        "groups": ["deployers"],
        "metadata": {"io.kubegate.auth.k8s.namespace": "apps"},
        "issued_at": T0,
        "expires_at": T0 + timedelta(minutes=10),
    }
    args.update(overrides)
    return mint(key or ks.active(), **args)  # type: ignore[arg-type]


def verifier(ks: keys.KeySet | None, *, now: datetime = T0, revoked: set[str] | None = None) -> JwksClientTokenVerifier:
    public = None if ks is None else ks.public()
    return JwksClientTokenVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        keys=lambda: public,
        revoked=lambda jti: jti in (revoked or set()),
        clock=now.timestamp,
    )


def test_a_minted_token_verifies_into_an_authentication() -> None:
    ks = keyset()
    auth = verifier(ks, now=T0 + timedelta(minutes=1)).verify_now(token(ks))
    assert auth.id == "tid-1"
    assert auth.method is Method.KUBERNETES
    assert auth.expires_at == T0 + timedelta(minutes=10)
    assert auth.metadata == {"io.kubegate.auth.k8s.namespace": "apps"}
    assert auth.identity.username == "serviceaccount:apps:deployer"
    assert auth.identity.uid == "sa-uid"
    assert auth.identity.groups == ("deployers",)
    header = jwt.get_unverified_header(token(ks))
    assert header == {"alg": "ES256", "kid": ks.active().kid, "typ": "kubegate-client+jwt"}


def _tamper(text: str, part: int, change: dict[str, object]) -> str:
    parts = text.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(parts[part] + "=="))
    decoded.update(change)
    parts[part] = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    return ".".join(parts)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda ks: token(ks, expires_at=T0 - timedelta(minutes=5), issued_at=T0 - timedelta(minutes=20)), "expired"),
        (lambda ks: token(ks, audience="someone-else"), "unknown"),
        (lambda ks: token(ks, issuer="https://evil.example"), "unknown"),
        (lambda ks: token(ks, method="METHOD_TOKEN"), "malformed"),
        (lambda ks: token(ks, expires_at=T0 + timedelta(hours=5)), "unknown"),  # longer than keys are kept
        (lambda ks: token(ks, key=keys.new_key(T0)), "unknown"),  # a kid that was never published
        (lambda ks: _tamper(token(ks), 1, {"groups": ["admins"]}), "unknown"),  # signature no longer matches
        (lambda ks: _tamper(token(ks), 0, {"typ": "JWT"}), "malformed"),
        (lambda ks: _tamper(token(ks), 0, {"alg": "none"}), "malformed"),
        (lambda ks: _tamper(token(ks), 0, {"alg": "HS256"}), "malformed"),
        (lambda ks: "not.a.jwt", "malformed"),
    ],
    ids=[
        "expired",
        "audience",
        "issuer",
        "static-method",
        "too-long",
        "unknown-kid",
        "tampered",
        "untyped",
        "alg-none",
        "alg-confusion",
        "garbage",
    ],
)
def test_refused_tokens(make: object, reason: str) -> None:
    ks = keyset()
    with pytest.raises(Unauthenticated) as info:
        verifier(ks).verify_now(make(ks))  # type: ignore[operator]
    assert info.value.reason == reason


def test_hmac_signed_with_the_public_key_is_refused() -> None:
    # The classic algorithm confusion: HS256 keyed with the verifier's public key. PyJWT refuses to
    # produce such a token, so it is built by hand.
    ks = keyset()
    public_pem = (
        ks.active()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "HS256", "kid": ks.active().kid, "typ": "kubegate-client+jwt"}
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "x",
        "jti": "j",
        "iat": 0,
        "exp": 2**31,
        "method": "METHOD_KUBERNETES",
    }
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(Unauthenticated):
        verifier(ks).verify_now(f"{signing_input}.{b64(signature)}")


def test_revoked_tokens_are_refused() -> None:
    ks = keyset()
    with pytest.raises(Unauthenticated):
        verifier(ks, revoked={"tid-1"}).verify_now(token(ks))


def test_no_keys_loaded_accepts_nothing_and_says_retry() -> None:
    """Before the keys are loaded no token is accepted, and none is called bad: the source is not ready."""
    with pytest.raises(VerifierUnavailable):
        verifier(None).verify_now(token(keyset()))


def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() -> None:
    ks = keyset(lifetime=timedelta(hours=1))
    old_token = token(ks)
    rotated = keys.rotate(ks, T0 + timedelta(minutes=1))
    assert len(rotated.keys) == 2
    assert rotated.active().kid != ks.active().kid
    assert rotated.keys[0].retired_at == T0 + timedelta(minutes=1)
    assert verifier(rotated, now=T0 + timedelta(minutes=2)).verify_now(old_token).id == "tid-1"
    new_token = token(rotated)
    assert jwt.get_unverified_header(new_token)["kid"] == rotated.active().kid
    # The retired key is published until every token it signed has expired, then dropped.
    assert len(keys.prune(rotated, T0 + timedelta(minutes=60)).keys) == 2
    pruned = keys.prune(rotated, T0 + timedelta(minutes=61, seconds=1))
    assert [k.kid for k in pruned.keys] == [rotated.active().kid]


def test_rotation_is_due_after_the_period() -> None:
    ks = keyset()
    assert not keys.rotation_due(ks, T0 + timedelta(days=29), every=timedelta(days=30))
    assert keys.rotation_due(ks, T0 + timedelta(days=30), every=timedelta(days=30))


def test_secret_encoding_round_trips_and_jwks_hides_private_parts() -> None:
    ks = keys.rotate(keyset(), T0)
    assert keys.decode(keys.encode(ks)) == ks
    jwks = ks.jwks()
    assert [k["kid"] for k in jwks["keys"]] == [ks.keys[1].kid, ks.keys[0].kid]
    assert all("d" not in k for k in jwks["keys"])
    assert all(k["alg"] == "ES256" and k["use"] == "sig" for k in jwks["keys"])
    with pytest.raises(ValueError, match="base64"):
        keys.decode("%%%")


def test_kid_is_the_rfc7638_thumbprint() -> None:
    # The example key and thumbprint of RFC 7638 are RSA; check the EC rule against joserfc instead.
    ks = keyset()
    jose = JoseKeySet.import_key_set({"keys": [ks.active().public_jwk()]})
    assert jose.keys[0].thumbprint() == ks.active().kid


def test_a_third_party_library_verifies_with_the_published_jwks() -> None:
    ks = keyset()
    jose_keys = JoseKeySet.import_key_set(ks.jwks())
    decoded = jose_jwt.decode(token(ks), jose_keys, algorithms=["ES256"])
    assert decoded.claims["jti"] == "tid-1"
    assert decoded.header["kid"] == ks.active().kid


def test_repeat_verifications_still_check_expiry_revocation_and_key_withdrawal() -> None:
    ks = keyset()
    now = [T0]
    revoked: set[str] = set()
    current = SigningKeys()
    current.keyset = ks
    v = JwksClientTokenVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        keys=current.public.current,
        revoked=lambda jti: jti in revoked,
        clock=lambda: now[0].timestamp(),  # noqa: PLW0108 - reads the clock the test moves
    )
    first, second, third = token(ks, token_id="a"), token(ks, token_id="b"), token(ks, token_id="c")
    for t in (first, second, third):
        v.verify_now(t)
        v.verify_now(t)  # from the cache
    revoked.add("a")
    with pytest.raises(Unauthenticated):
        v.verify_now(first)
    now[0] = T0 + timedelta(minutes=11)
    with pytest.raises(Unauthenticated) as expired:
        v.verify_now(second)
    assert expired.value.reason == "expired"
    now[0] = T0
    current.keyset = keys.initial(T0, max_token_lifetime=timedelta(hours=1))  # the old key withdrawn
    with pytest.raises(Unauthenticated):
        v.verify_now(third)


def test_verifiers_get_the_published_jwks_and_nothing_private() -> None:
    ks = keys.rotate(keyset(), T0)
    public = ks.public()
    assert public.jwks == ks.jwks()
    assert public.max_token_lifetime_seconds == ks.max_token_lifetime_seconds
    private = {**ks.active().public_jwk(), "d": ks.active().private_jwk["d"]}
    with pytest.raises(ValueError, match="private members") as refused:
        PublicKeySet(jwks={"keys": [private]}, max_token_lifetime_seconds=3600)
    assert ks.active().private_jwk["d"] not in str(refused.value)


def test_keys_are_parsed_once_for_each_key_set_not_for_each_token(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[object] = []

    def counting(jwks: object) -> object:
        parsed.append(jwks)
        return es256_keys(jwks)  # type: ignore[arg-type]

    monkeypatch.setattr(verify_client_tokens, "es256_keys", counting)
    ks = keyset()
    current = SigningKeys()
    current.keyset = ks
    v = JwksClientTokenVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        keys=current.public.current,
        revoked=lambda jti: False,
        clock=T0.timestamp,
    )
    for token_id in ("a", "b", "c"):
        v.verify_now(token(ks, token_id=token_id))
    assert len(parsed) == 1
    current.keyset = keys.rotate(ks, T0)
    assert current.keyset is not None
    v.verify_now(token(current.keyset, token_id="d"))
    v.verify_now(token(ks, token_id="e"))
    assert len(parsed) == 2


def test_a_token_signed_by_a_key_not_published_for_es256_signatures_is_refused() -> None:
    ks = keyset()
    published = ks.jwks()
    published["keys"][0]["use"] = "enc"
    public = PublicKeySet(jwks=published, max_token_lifetime_seconds=3600)
    v = JwksClientTokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, keys=lambda: public, revoked=lambda jti: False, clock=T0.timestamp
    )
    with pytest.raises(Unauthenticated) as refused:
        v.verify_now(token(ks))
    assert refused.value.reason == "unknown"


def test_the_verified_claims_are_kept_but_never_serialized() -> None:
    ks = keyset()
    auth = verifier(ks).verify_now(token(ks))
    assert auth.identity.claims["jti"] == "tid-1"
    assert auth.identity.claims["iss"] == ISSUER
    assert auth.identity.claims["groups"] == ["deployers"]
    body = json.loads(auth.model_dump_json(by_alias=True))
    assert set(body) == {"id", "method", "expiresAt", "createdAt", "updatedAt", "metadata", "identity"}
    assert body["identity"] == {"username": "serviceaccount:apps:deployer", "uid": "sa-uid", "groups": ["deployers"]}
    assert "claims" not in repr(auth)
    assert hash(auth.identity) == hash(auth.identity.model_copy(update={"claims": {}}))


def test_the_verification_core_loads_no_private_key_code() -> None:
    # Applications embed the verification core: minting, key generation and the server stay out of it.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, kubegate.verify; print(' '.join(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert "kubegate.verify.client_tokens" in loaded
    assert not [m for m in loaded if m.startswith(("kubegate.client_tokens", "kubegate.server", "kopf", "aiohttp"))]
