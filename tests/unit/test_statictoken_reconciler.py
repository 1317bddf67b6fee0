"""The StaticToken reconciler against an in-memory API: what a user sees after each reconcile.

The Secret and its token, the hashes the servers can read, status and conditions, Events; for creation,
rotation (on request and on schedule, with and without overlap), expiry, deletion and the ways a spec or
a Secret can be wrong. A clock the test sets stands in for time.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fake_kube import FakeKube

from kubegate.contracts.api_paths import path_for
from kubegate.contracts.timestamps import format_time
from kubegate.contracts.token_format import generate_token, hash_token
from kubegate.contracts.token_secret import is_owned_by, previous_token, stored_token, stored_token_id
from kubegate.methods.token.store import KubeStaticTokenStore
from kubegate.operator.config_writer import ConfigWriter
from kubegate.operator.events import EventPoster
from kubegate.operator.statictoken import Reconciled, TokenReconciler
from kubegate.operator.token_plan import ROTATE_ANNOTATION
from kubegate.resources.statictoken import StaticToken
from kubegate.settings import OperatorSettings
from kubegate.validation_config.model import TokenEntry
from kubegate.validation_config.registry import Registry
from kubegate.validation_config.shards import DATA_KEY, SHARD_LABEL, SHARD_LABEL_VALUE, decode_shard

NS, OPS = "apps", "kubegate-system"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHARDS = 4


class Operator:
    """One operator process on a FakeKube, with a clock the test moves."""

    def __init__(self, kube: FakeKube, settings: OperatorSettings) -> None:
        self.kube = kube
        self.now = T0

        async def keys() -> set[tuple[str, str]]:
            items, _ = await kube.list_all(StaticToken.path(namespace=NS))
            return {(NS, i["metadata"]["name"]) for i in items}

        self.writer = ConfigWriter(
            client=kube, namespace=OPS, registry=Registry(SHARDS), write_delay=0, list_token_keys=keys
        )
        self.reconciler = TokenReconciler(
            client=kube,
            settings=settings,
            writer=self.writer,
            events=EventPoster(kube),
            clock=lambda: self.now,
            config_wait=2.0,
        )

    def add(self, name: str, spec: dict[str, Any], **annotations: str) -> None:
        self.kube.put(
            StaticToken.path(namespace=NS, name=name),
            {
                "apiVersion": StaticToken.api_version,
                "kind": StaticToken.kind,
                "metadata": {
                    "name": name,
                    "namespace": NS,
                    "uid": f"uid-{name}",
                    "creationTimestamp": format_time(T0),
                    "generation": 1,
                    "annotations": annotations,
                },
                "spec": spec,
            },
        )

    def edit(self, name: str, *, spec: dict[str, Any] | None = None, annotations: dict[str, str] | None = None) -> None:
        """A user's edit: a spec change bumps the generation, as the API server does."""
        obj = self.resource(name)
        obj["metadata"]["annotations"].update(annotations or {})
        if spec is not None:
            obj["spec"] = spec
            obj["metadata"]["generation"] += 1

    async def reconcile(self, name: str) -> Reconciled:
        result = await self.reconciler.reconcile(NS, name)
        assert result is not None
        return result

    def resource(self, name: str) -> dict[str, Any]:
        return self.kube.objects[StaticToken.path(namespace=NS, name=name)]

    def status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.resource(name).get("status") or {}
        return status

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        return next((c for c in self.status(name).get("conditions") or [] if c["type"] == type_), None)

    def secret(self, name: str) -> dict[str, Any] | None:
        return self.kube.objects.get(path_for(plural="secrets", namespace=NS, name=name))

    def token(self, name: str) -> str:
        secret = self.secret(name)
        assert secret is not None, f"no Secret {name}"
        token = stored_token(secret)
        assert token is not None
        return token

    def published(self) -> dict[str, TokenEntry]:
        """sha256 -> entry, of every entry in the validation config Secrets."""
        prefix = path_for(plural="secrets", namespace=OPS) + "/"
        return {
            e.sha256: e
            for p, o in self.kube.objects.items()
            if p.startswith(prefix) and (o["metadata"].get("labels") or {}).get(SHARD_LABEL) == SHARD_LABEL_VALUE
            for e in decode_shard(o["data"][DATA_KEY])
        }

    def events(self, reason: str) -> list[dict[str, Any]]:
        prefix = path_for(plural="events", namespace=NS) + "/"
        return [o for p, o in self.kube.objects.items() if p.startswith(prefix) and o["reason"] == reason]


@asynccontextmanager
async def running(**settings: Any) -> AsyncIterator[Operator]:
    operator = Operator(FakeKube(), OperatorSettings(operator_namespace=OPS, config_shards=SHARDS, **settings))
    await operator.writer.start()
    try:
        yield operator
    finally:
        await operator.writer.stop()


# --- creation -------------------------------------------------------------------------------------------


async def test_a_new_static_token_gets_a_secret_a_published_hash_and_ready() -> None:
    async with running(token_prefix="kg_") as op:
        op.add("ci", {"groups": ["dev"], "ttl": "24h", "metadata": {"team": "a"}})
        result = await op.reconcile("ci")

        token = op.token("ci")
        secret = op.secret("ci")
        assert secret is not None
        assert token.startswith("kg_")
        assert re.fullmatch(r"kg_[A-Za-z0-9_-]{43}=", token)
        assert is_owned_by(secret, "uid-ci")
        status = op.status("ci")
        entry = op.published()[hash_token(token)]
        assert entry.token_id == status["tokenId"] == stored_token_id(secret)
        assert (entry.namespace, entry.name, entry.groups, entry.metadata) == (NS, "ci", ("dev",), {"team": "a"})
        assert entry.expires_at == T0 + timedelta(hours=24)
        assert status["secretName"] == "ci"
        assert status["createdAt"] == format_time(T0)
        assert status["expiresAt"] == format_time(T0 + timedelta(hours=24))
        assert status["observedGeneration"] == 1
        ready = op.condition("ci", "Ready")
        assert ready is not None
        assert ready["status"] == "True"
        assert op.condition("ci", "Stalled") is None
        assert result.outcome.kind == "ready"
        assert result.wake == T0 + timedelta(hours=24)
        assert not result.recheck_secret


async def test_reconciling_again_changes_nothing() -> None:
    async with running() as op:
        op.add("ci", {"ttl": "24h"})
        await op.reconcile("ci")
        token, writes = op.token("ci"), op.kube.writes
        op.now = T0 + timedelta(minutes=10)
        await op.reconcile("ci")
        assert op.token("ci") == token
        assert op.kube.writes == writes


async def test_the_secret_goes_where_spec_secret_name_says_and_moves_with_it() -> None:
    async with running() as op:
        op.add("ci", {"secretName": "first"})
        await op.reconcile("ci")
        token = op.token("first")
        op.edit("ci", spec={"secretName": "second"})
        await op.reconcile("ci")
        assert op.secret("first") is None
        assert op.token("second") == token
        assert op.status("ci")["secretName"] == "second"
        assert op.status("ci")["observedGeneration"] == 2
        assert list(op.published()) == [hash_token(token)]
        assert len(op.events("SecretMoved")) == 1


async def test_a_deleted_secret_gets_a_new_token_and_the_old_one_stops_working() -> None:
    async with running() as op:
        op.add("ci", {})
        await op.reconcile("ci")
        first = op.token("ci")
        del op.kube.objects[path_for(plural="secrets", namespace=NS, name="ci")]
        await op.reconcile("ci")
        second = op.token("ci")
        assert second != first
        assert list(op.published()) == [hash_token(second)]
        (event,) = op.events("SecretRecreated")
        assert event["type"] == "Warning"
        assert first not in event["message"]
        assert second not in event["message"]


async def test_a_token_known_by_its_hash_is_published_from_the_spec_without_a_secret() -> None:
    """What the server's API creates: the hash and nothing else; the token id is the resource's uid."""
    async with running() as op:
        token = generate_token("kg_")
        resource = {
            "apiVersion": StaticToken.api_version,
            "kind": StaticToken.kind,
            "metadata": {"name": "token-abc", "namespace": NS},
            "spec": {"tokenHash": hash_token(token), "groups": ["dev"]},
        }
        created = await KubeStaticTokenStore(op.kube).create(resource)
        patched: list[str] = []
        patch = op.kube.patch

        async def counted(path: str, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            patched.append(path)
            return await patch(path, body, **kwargs)

        op.kube.patch = counted  # type: ignore[method-assign]
        await op.reconcile("token-abc")

        entry = op.published()[hash_token(token)]
        assert entry.token_id == created.uid == op.resource("token-abc")["metadata"]["uid"]
        assert entry.created_at == created.created_at
        assert entry.groups == ("dev",)
        assert [p for p in op.kube.objects if "/secrets/" in p and f"/namespaces/{NS}/" in p] == []
        status = op.status("token-abc")
        assert status["tokenId"] == created.uid
        assert "secretName" not in status or status["secretName"] is None
        ready = op.condition("token-abc", "Ready")
        assert ready is not None
        assert ready["status"] == "True"
        assert [p for p in patched if p.startswith(StaticToken.path(namespace=NS))] == [
            StaticToken.path(namespace=NS, name="token-abc") + "/status"
        ]
        assert token not in json.dumps(op.kube.objects)


async def test_the_servers_store_tells_whether_the_very_statictoken_it_created_exists() -> None:
    async with running() as op:
        store = KubeStaticTokenStore(op.kube)
        resource = {
            "apiVersion": StaticToken.api_version,
            "kind": StaticToken.kind,
            "metadata": {"name": "token-abc", "namespace": NS},
            "spec": {"tokenHash": hash_token("t" * 44)},
        }
        created = await store.create(resource)
        assert await store.exists(NS, "token-abc", uid=created.uid)
        assert not await store.exists(NS, "token-abc", uid="another-object-of-the-same-name")
        op.resource("token-abc")["metadata"]["deletionTimestamp"] = format_time(T0)
        assert not await store.exists(NS, "token-abc", uid=created.uid)
        await store.delete(NS, "token-abc")
        assert not await store.exists(NS, "token-abc", uid=created.uid)


async def test_a_token_known_by_its_hash_expires_as_its_spec_says() -> None:
    async with running() as op:
        op.add("token-x", {"tokenHash": hash_token("x" * 44), "expiresAt": format_time(T0 + timedelta(hours=1))})
        first = await op.reconcile("token-x")
        assert hash_token("x" * 44) in op.published()
        assert first.wake == T0 + timedelta(hours=1)
        op.now = T0 + timedelta(hours=2)
        await op.reconcile("token-x")
        assert op.published() == {}
        stalled_or_expired = op.condition("token-x", "Ready")
        assert stalled_or_expired is not None
        assert stalled_or_expired["status"] == "False"
        assert "rotate" not in stalled_or_expired["message"]


# --- rotation -------------------------------------------------------------------------------------------


async def test_a_rotation_request_replaces_the_token_and_keeps_the_old_one_for_the_overlap() -> None:
    async with running() as op:
        op.add("ci", {"rotation": {"every": "720h", "overlap": "1h"}})
        await op.reconcile("ci")
        first = op.token("ci")
        op.edit("ci", annotations={ROTATE_ANNOTATION: "please"})
        op.now = T0 + timedelta(minutes=5)
        result = await op.reconcile("ci")

        second = op.token("ci")
        assert second != first
        published = op.published()
        overlap_end = T0 + timedelta(minutes=65)
        assert published[hash_token(first)].expires_at == overlap_end
        assert published[hash_token(second)].token_id == op.status("ci")["tokenId"]
        assert op.status("ci")["rotatedAt"] == format_time(op.now)
        assert op.status("ci")["handledRotateRequest"] == "please"
        assert len(op.events("Rotated")) == 1
        assert result.wake == overlap_end

        await op.reconcile("ci")
        assert op.token("ci") == second, "the same request rotated twice"

        op.now = overlap_end
        await op.reconcile("ci")
        assert list(op.published()) == [hash_token(second)]
        secret = op.secret("ci")
        assert secret is not None
        assert previous_token(secret) is None


async def test_a_token_is_rotated_when_its_schedule_says_and_without_overlap_the_old_one_stops_at_once() -> None:
    async with running() as op:
        op.add("ci", {"rotation": {"every": "1h"}})
        result = await op.reconcile("ci")
        assert result.wake == T0 + timedelta(hours=1)
        first = op.token("ci")

        op.now = T0 + timedelta(minutes=59)
        await op.reconcile("ci")
        assert op.token("ci") == first

        op.now = T0 + timedelta(hours=1)
        result = await op.reconcile("ci")
        second = op.token("ci")
        assert second != first
        assert list(op.published()) == [hash_token(second)]
        assert result.wake == T0 + timedelta(hours=2)


# --- expiry and deletion --------------------------------------------------------------------------------


async def test_an_expired_token_is_unpublished_and_stalled_with_one_warning() -> None:
    async with running() as op:
        op.add("ci", {"ttl": "1h"})
        await op.reconcile("ci")
        token = op.token("ci")
        op.now = T0 + timedelta(hours=2)
        result = await op.reconcile("ci")

        assert result.outcome.kind == "expired"
        assert hash_token(token) not in op.published()
        ready, stalled = op.condition("ci", "Ready"), op.condition("ci", "Stalled")
        assert ready is not None
        assert stalled is not None
        assert (ready["status"], ready["reason"]) == ("False", "Expired")
        assert (stalled["status"], stalled["reason"]) == ("True", "Expired")
        assert format_time(T0 + timedelta(hours=1)) in ready["message"]
        assert op.secret("ci") is not None, "expired tokens are kept unless delete_expired_after says otherwise"

        op.now = T0 + timedelta(hours=3)
        await op.reconcile("ci")
        assert len(op.events("Expired")) == 1


async def test_an_expired_token_is_deleted_after_the_grace_period_when_asked() -> None:
    async with running(delete_expired_after="1h") as op:
        op.add("ci", {"ttl": "1h"})
        await op.reconcile("ci")
        op.now = T0 + timedelta(hours=1, minutes=59)
        await op.reconcile("ci")
        assert op.events("DeletingExpired") == []
        op.now = T0 + timedelta(hours=2)
        await op.reconcile("ci")
        assert StaticToken.path(namespace=NS, name="ci") not in op.kube.objects
        assert len(op.events("DeletingExpired")) == 1


async def test_an_expiry_in_the_past_is_refused_without_a_token() -> None:
    async with running() as op:
        op.add("ci", {"expiresAt": "2025-01-01T00:00:00Z"})
        result = await op.reconcile("ci")
        assert (result.outcome.kind, result.outcome.reason) == ("stalled", "ExpiryInPast")
        assert op.secret("ci") is None
        assert op.published() == {}


async def test_a_deleted_static_token_is_forgotten_and_its_hash_unpublished() -> None:
    async with running() as op:
        op.add("kept", {})
        op.add("gone", {})
        await op.reconcile("kept")
        await op.reconcile("gone")
        gone = op.token("gone")
        op.resource("gone")["metadata"]["deletionTimestamp"] = format_time(T0)

        assert await op.reconciler.reconcile(NS, "gone") is None
        assert await op.reconciler.forget(NS, "gone", timeout=2.0)
        assert list(op.published()) == [hash_token(op.token("kept"))]
        assert hash_token(gone) not in op.published()


# --- what a user can get wrong --------------------------------------------------------------------------


async def test_a_secret_of_someone_else_is_never_overwritten() -> None:
    async with running() as op:
        theirs = {"metadata": {"name": "ci", "namespace": NS}, "data": {"token": _b64("their-own-token-1")}}
        theirs = op.kube.put(path_for(plural="secrets", namespace=NS, name="ci"), theirs)
        op.add("ci", {})
        result = await op.reconcile("ci")
        assert (result.outcome.kind, result.outcome.reason) == ("stalled", "SecretConflict")
        assert op.secret("ci") == theirs
        assert op.published() == {}
        assert len(op.events("SecretConflict")) == 1


async def test_an_invalid_spec_stalls_and_says_which_field() -> None:
    async with running() as op:
        op.add("ci", {"ttl": "forever"})
        result = await op.reconcile("ci")
        assert (result.outcome.kind, result.outcome.reason) == ("stalled", "InvalidSpec")
        assert "ttl" in result.outcome.message
        assert op.secret("ci") is None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_a_brought_token_is_published_as_it_is_and_its_secret_left_alone() -> None:
    async with running() as op:
        path = path_for(plural="secrets", namespace=NS, name="mine")
        op.kube.put(path, {"metadata": {"name": "mine", "namespace": NS}, "data": {"key": _b64("a-brought-token-1")}})
        before = json.dumps(op.kube.objects[path], sort_keys=True)
        op.add("ci", {"secretRef": {"name": "mine", "key": "key"}})
        result = await op.reconcile("ci")
        assert result.outcome.kind == "ready"
        assert result.recheck_secret
        assert op.published()[hash_token("a-brought-token-1")].token_id == op.status("ci")["tokenId"]
        assert json.dumps(op.kube.objects[path], sort_keys=True) == before


def _jwt_shaped() -> str:
    def segment(value: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{segment({'alg': 'RS256'})}.{segment({'iss': 'https://idp.example'})}.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "SecretNotFound"),
        ({"other": _b64("a-brought-token-1")}, "SecretKeyMissing"),
        ({"token": _b64("short")}, "InvalidToken"),
        ({"token": _b64("has spaces in the middle")}, "InvalidToken"),
        ({"token": _b64(_jwt_shaped())}, "InvalidToken"),
    ],
)
async def test_a_brought_secret_that_holds_no_usable_token_stalls_with_what_to_do(
    data: dict[str, str] | None, reason: str
) -> None:
    async with running() as op:
        if data is not None:
            op.kube.put(
                path_for(plural="secrets", namespace=NS, name="mine"), {"metadata": {"name": "mine"}, "data": data}
            )
        op.add("ci", {"secretRef": {"name": "mine"}})
        result = await op.reconcile("ci")
        assert (result.outcome.kind, result.outcome.reason) == ("stalled", reason)
        stalled = op.condition("ci", "Stalled")
        assert stalled is not None
        assert stalled["reason"] == reason
        assert op.published() == {}
