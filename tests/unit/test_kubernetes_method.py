import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest

from kubegate.kube import ApiUnavailable
from kubegate.methods.kubernetes import bindings
from kubegate.methods.kubernetes.bindings import Binding, Refusal, groups_for
from kubegate.methods.kubernetes.review import ReviewRefused, ReviewUnavailable, TokenReviewer, account_from

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
