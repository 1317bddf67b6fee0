import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from kubegate.client_tokens import keys
from kubegate.kube import ApiUnavailable
from kubegate.methods.kubernetes import bindings
from kubegate.methods.kubernetes.bindings import Binding, Refusal, groups_for
from kubegate.methods.kubernetes.claims import claimed_account
from kubegate.methods.kubernetes.exchange import Exchange
from kubegate.methods.kubernetes.review import (
    ReviewBusy,
    ReviewRefused,
    ReviewUnavailable,
    TokenReviewer,
    account_from,
)

BINDINGS = (
    Binding(namespaces=("team-*",), service_accounts=("deployer", "ci-*"), groups=("deployers",)),
    Binding(namespaces=("team-a",), service_accounts=("*",), groups=("team-a",)),
    Binding(namespaces=("labelled",), service_accounts=("*",), namespace_labels={"exchange": "yes"}, groups=("l",)),
)


def test_matching_bindings_add_their_groups() -> None:
    assert groups_for(BINDINGS, "team-a", "deployer", None) == ("deployers", "team-a")
    assert groups_for(BINDINGS, "team-b", "ci-42", None) == ("deployers",)
    assert groups_for(BINDINGS, "team-a", "anyone", None) == ("team-a",)


@pytest.mark.parametrize(
    ("namespace", "name", "labels", "message"),
    [
        ("prod", "deployer", None, "namespace 'prod' is not allowed"),
        ("team-b", "intruder", None, "service account 'intruder' in namespace 'team-b' is not allowed"),
        ("labelled", "x", {"exchange": "no"}, "does not carry the labels"),
        ("labelled", "x", None, "does not carry the labels"),
    ],
)
def test_refusals_name_the_rule(namespace: str, name: str, labels: dict[str, str] | None, message: str) -> None:
    with pytest.raises(Refusal, match=message):
        groups_for(BINDINGS, namespace, name, labels)


def test_labels_are_read_only_when_a_matching_binding_needs_them() -> None:
    assert bindings.needs_namespace_labels(BINDINGS, "labelled", "x")
    assert not bindings.needs_namespace_labels(BINDINGS, "team-a", "deployer")


def test_bindings_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("- namespaces: ['apps']\n  serviceAccounts: ['web']\n  groups: [web]\n")
    assert bindings.load(good) == (Binding(namespaces=("apps",), service_accounts=("web",), groups=("web",)),)
    bad = tmp_path / "bad.yaml"
    bad.write_text("- namespaces: []\n  serviceAccount: ['web']\n")
    with pytest.raises(ValueError, match=r"bad.yaml: .*namespaces.*serviceAccounts"):
        bindings.load(bad)


def _jwt(exp: int | None) -> str:
    payload = {"sub": "x"} | ({"exp": exp} if exp is not None else {})
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{encoded}.c2ln"


def _status(**user: Any) -> dict[str, Any]:
    base = {
        "username": "system:serviceaccount:apps:web",
        "uid": "sa-uid",
        "extra": {
            "authentication.kubernetes.io/pod-name": ["web-0"],
            "authentication.kubernetes.io/pod-uid": ["pod-uid"],
        },
    }
    return {"authenticated": True, "audiences": ["kubegate"], "user": base | user}


def test_account_from_a_pod_bound_review() -> None:
    account = account_from(_status(), _jwt(2_000_000_000), ["kubegate"])
    assert (account.namespace, account.name, account.uid) == ("apps", "web", "sa-uid")
    assert (account.pod_name, account.pod_uid, account.expires_at) == ("web-0", "pod-uid", 2_000_000_000)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ({"authenticated": False, "error": "pod not found"}, "refused the service-account token: pod not found"),
        (_status() | {"audiences": ["other"]}, "not for the audience"),
        (_status(username="alice"), "not a service-account token"),
    ],
)
def test_account_from_refusals(status: dict[str, Any], message: str) -> None:
    with pytest.raises(ReviewRefused, match=message):
        account_from(status, _jwt(None), ["kubegate"])


class FakeClient:
    def __init__(self, answer: dict[str, Any] | Exception, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.bodies: list[dict[str, Any]] = []

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        await asyncio.sleep(self.delay)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_reviews_are_cached_briefly_and_merged_in_flight() -> None:
    now = [1000.0]
    client = FakeClient({"status": _status()}, delay=0.05)
    reviewer = TokenReviewer(client, audiences=["kubegate"], cache_seconds=5, clock=lambda: now[0])  # type: ignore[arg-type]
    token = _jwt(2000)
    results = await asyncio.gather(*(reviewer.review(token) for _ in range(20)))
    assert {r.name for r in results} == {"web"}
    assert reviewer.api_calls == 1  # twenty identical reviews, one API call
    assert client.bodies[0]["spec"] == {"token": token, "audiences": ["kubegate"]}
    now[0] += 4
    await reviewer.review(token)
    assert reviewer.api_calls == 1  # still cached
    now[0] += 2
    await reviewer.review(token)
    assert reviewer.api_calls == 2  # cache expired after 5 s


async def test_the_cache_never_outlives_the_token() -> None:
    now = [1000.0]
    reviewer = TokenReviewer(FakeClient({"status": _status()}), audiences=[], cache_seconds=5, clock=lambda: now[0])  # type: ignore[arg-type]
    token = _jwt(1001)
    await reviewer.review(token)
    now[0] = 1001.5
    await reviewer.review(token)
    assert reviewer.api_calls == 2


async def test_refusals_are_not_cached_and_outages_are_unavailable() -> None:
    refused = TokenReviewer(FakeClient({"status": {"authenticated": False}}), audiences=[])  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(ReviewRefused):
            await refused.review(_jwt(None))
    assert refused.api_calls == 2
    down = TokenReviewer(FakeClient(ApiUnavailable("connection refused")), audiences=[])  # type: ignore[arg-type]
    with pytest.raises(ReviewUnavailable, match="cannot be reached"):
        await down.review(_jwt(None))


def _sa_token(namespace: str, name: str, *, legacy: bool = False) -> str:
    if legacy:  # a token from a kubernetes.io/service-account-token Secret: flat claims and `sub` only
        claims: dict[str, Any] = {
            "iss": "kubernetes/serviceaccount",
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io/serviceaccount/namespace": namespace,
        }
    else:
        claims = {
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": "u"}},
            "exp": 2_000_000_000,
        }
    return jwt.encode(claims, "not-the-cluster-key-but-long-enough", algorithm="HS256")


@pytest.mark.parametrize(
    ("token", "claimed"),
    [
        (_sa_token("apps", "web"), ("apps", "web")),
        (_sa_token("apps", "web", legacy=True), ("apps", "web")),
        ("not-a-jwt", None),
        ("a.b.c", None),
        (_sa_token("apps", "web") + ".extra", None),
        (_sa_token("apps", "web").rsplit(".", 1)[0] + ".", None),  # no signature
        (jwt.encode({"sub": "system:serviceaccount:apps:web"}, None, algorithm="none"), None),
        (jwt.encode({"sub": "alice"}, "k" * 32, algorithm="HS256"), None),
        (jwt.encode({"sub": "system:serviceaccount:a:b:c"}, "k" * 32, algorithm="HS256"), None),
        (jwt.encode({"kubernetes.io": {"namespace": "apps"}}, "k" * 32, algorithm="HS256"), None),
    ],
)
def test_the_claimed_account_is_read_only_from_sa_shaped_jwts(token: str, claimed: tuple[str, str] | None) -> None:
    assert claimed_account(token) == claimed


def test_bindings_may_admit_on_names_alone_labels_unknown() -> None:
    assert bindings.may_admit(BINDINGS, "team-b", "ci-7")
    assert bindings.may_admit(BINDINGS, "labelled", "anyone")  # its labels decide later
    assert not bindings.may_admit(BINDINGS, "team-b", "intruder")
    assert not bindings.may_admit(BINDINGS, "prod", "deployer")


def _exchange(reviewer: TokenReviewer) -> Exchange:
    return Exchange(
        review=reviewer.review,
        namespace_labels=_no_labels,
        bindings=BINDINGS,
        keys=lambda: keys.initial(datetime.now(UTC), max_token_lifetime=timedelta(hours=1)),
        issuer="https://kubegate.test",
        audience="kubegate",
        max_lifetime=3600,
    )


async def _no_labels(namespace: str) -> dict[str, str]:
    return {}


async def test_garbage_and_unbound_tokens_cost_no_token_review() -> None:
    client = FakeClient({"status": {"authenticated": False, "error": "invalid bearer token"}})
    exchange = _exchange(TokenReviewer(client, audiences=[]))  # type: ignore[arg-type]
    refused = [
        "",
        "garbage",
        "x" * 4096,
        "a.b.c",
        _sa_token("prod", "deployer"),  # no binding names the namespace
        _sa_token("team-a", "deployer") + "x.y",  # not three segments
        _sa_token("team-b", "intruder"),  # the namespace is bound, the service account is not
    ]
    for token in refused:
        with pytest.raises(ReviewRefused):
            await exchange.exchange(token)
    assert client.bodies == []
    client.answer = {"status": _status(username="system:serviceaccount:team-a:deployer")}
    exchanged = await exchange.exchange(_sa_token("team-a", "deployer"))
    assert exchanged.authentication.identity.groups == ("deployers", "team-a")
    assert len(client.bodies) == 1  # a bound token is reviewed, as before


async def test_concurrent_reviews_are_bounded_and_identical_ones_share_a_slot() -> None:
    client = FakeClient({"status": _status()}, delay=0.1)
    reviewer = TokenReviewer(client, audiences=[], max_concurrent=2)  # type: ignore[arg-type]
    first, second, third = (_sa_token("apps", f"web-{i}") for i in range(3))
    reviews = [asyncio.create_task(reviewer.review(t)) for t in (first, second, first)]
    await asyncio.sleep(0.01)
    with pytest.raises(ReviewBusy, match="2 service-account tokens are being reviewed already"):
        await reviewer.review(third)
    assert len(await asyncio.gather(*reviews)) == 3
    assert len(client.bodies) == 2
    await reviewer.review(third)  # a slot is free again
    assert len(client.bodies) == 3
