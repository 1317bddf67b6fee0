"""OIDCProvider reconciliation: discovery, keys and client credentials, published for the servers; status.

One reconcile reads the resource, its client Secret, the issuer's discovery document and JWKS, and the
provider's published Secret, then writes that Secret (when its content changed) and the status. What it
concludes from what it read is in `oidcprovider_plan.py`, and in `verify/oidc/discovery.py` for the checks
of the issuer's documents and keys (shared with verifiers that trust an issuer in-process). Nothing kept in
memory between reconciles decides anything: the published Secret is the record of the last good keys, so a
restarted or new leader carries on where the last one stopped.

The client secret exists here between the read of its Secret and the write of the published one; it is
never logged, put in an event, a status or an exception message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from kubegate.contracts import timestamps
from kubegate.contracts.api_paths import path_for
from kubegate.contracts.timestamps import format_time
from kubegate.kube import AlreadyExists, ApiUnavailable, Conflict, KubeApi, NotFound
from kubegate.operator import conditions
from kubegate.operator import oidcprovider_plan as plan
from kubegate.operator.conditions import Outcome
from kubegate.operator.events import EventPoster
from kubegate.operator.status import Retry, StatusWriter, read_live
from kubegate.resources.duration import parse_duration
from kubegate.resources.oidcprovider import OIDCProvider, OIDCProviderSpec
from kubegate.settings import OperatorSettings
from kubegate.validation_config.providers import DATA_KEY, ProviderConfig, decode, encode, secret_body, secret_name
from kubegate.verify.oidc.discovery import DiscoveryError, allowed_algorithms, read_issuer
from kubegate.verify.oidc.provider_http import ProviderError, ProviderUnreachable

log = logging.getLogger(__name__)


class Fetcher(Protocol):
    """The one call the reconciler makes to a provider; `ProviderHttp` makes it, tests pass a fake."""

    async def get_json(self, url: str, *, ca_bundle: str | None, bearer: str | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class ProviderReconciled:
    outcome: Outcome
    issuer: str | None
    """spec.issuerURL as reconciled (None when the spec is invalid)."""
    secret_ref: tuple[str, str] | None
    """(namespace, name) of the client Secret to watch; None when the spec names none."""
    secret_version: str | None
    """The resourceVersion of the client Secret as read; None when it does not exist."""
    keys_until: datetime | None = None
    """When the last good keys, kept while the issuer cannot be read, are withdrawn."""


class _InvalidSpec(Exception):  # noqa: N818 - internal control flow
    def __init__(self, problem: plan.Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


@dataclass
class _Read:
    """What one reconcile read of the cluster."""

    body: dict[str, Any]
    published: dict[str, Any] | None
    previous: ProviderConfig | None
    secret_ref: tuple[str, str] | None = None
    secret_version: str | None = None


class ProviderReconciler:
    """Brings one OIDCProvider's published config and status in line with its spec and its issuer."""

    def __init__(
        self,
        *,
        client: KubeApi,
        http: Fetcher,
        settings: OperatorSettings,
        events: EventPoster,
        clock: Callable[[], datetime] = timestamps.now,
    ) -> None:
        self._client = client
        self._http = http
        self._namespace = settings.operator_namespace
        self._max_age = parse_duration(settings.provider_keys_max_age)
        self._max_age_text = settings.provider_keys_max_age
        self._status = StatusWriter(kind=OIDCProvider, client=client, events=events)
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _published_path(self, name: str) -> str:
        return path_for(plural="secrets", namespace=self._namespace, name=secret_name(name))

    async def forget(self, name: str) -> None:
        """Withdraw a deleted OIDCProvider's published config (its owner reference would too, later)."""
        async with self._lock(name):
            try:
                with contextlib.suppress(NotFound):
                    await self._client.delete(self._published_path(name))
            except ApiUnavailable as exc:
                raise Retry(str(exc)) from exc
        self._locks.pop(name, None)
        log.info("OIDCProvider %s deleted: its config is withdrawn", name)

    async def reconcile(self, name: str) -> ProviderReconciled | None:
        """Reconcile one OIDCProvider; None when it is gone or being deleted.

        Reads the resource afresh under a per-provider lock (handlers and the daemon may ask at once).
        Raises Retry when the Kubernetes API fails; a provider that fails gives a `retrying` outcome, bad
        input a `stalled` one.
        """
        async with self._lock(name):
            body = await read_live(self._client, OIDCProvider.path(name=name))
            if body is None:
                return None
            try:
                return await self._reconcile(body)
            except (ApiUnavailable, Conflict, AlreadyExists) as exc:
                raise Retry(str(exc)) from exc

    async def _reconcile(self, body: dict[str, Any]) -> ProviderReconciled:
        name = body["metadata"]["name"]
        read = _Read(body=body, published=await self._get(self._published_path(name)), previous=None)
        read.previous = _decode_published(read.published, name)
        try:
            spec = _spec(body)
        except _InvalidSpec as stalled:
            return await self._stalled(read, stalled.problem, issuer=None)
        try:
            ca_bundle = plan.ca_bundle_pem(spec.ca_bundle)
            await self._check_unique_issuer(body, spec)
            secret = await self._client_secret(read, spec)
        except plan.Problem as problem:
            return await self._stalled(read, problem, issuer=spec.issuer_url)

        try:
            issuer = await read_issuer(
                spec.issuer_url, self._http, ca_bundle=ca_bundle, algorithms=spec.algorithms, names=plan.SPEC_FIELDS
            )
        except (ProviderUnreachable, ProviderError) as exc:
            failed = plan.Problem("DiscoveryFailed", f"cannot read the issuer: {exc}", transient=True)
            return await self._unreachable(read, spec, failed, secret=secret, ca_bundle=ca_bundle)
        except DiscoveryError as unfit:
            if unfit.transient:
                return await self._unreachable(read, spec, plan.Problem.of(unfit), secret=secret, ca_bundle=ca_bundle)
            return await self._stalled(read, plan.Problem.of(unfit), issuer=spec.issuer_url)
        discovery, algorithms, jwks = issuer.discovery, issuer.algorithms, issuer.jwks

        now = self._clock()
        config = plan.provider_config(
            name=name,
            generation=int(body["metadata"].get("generation") or 0),
            spec=spec,
            discovery=discovery,
            algorithms=algorithms,
            jwks=jwks,
            keys_fetched_at=now,
            secret=secret,
            ca_bundle=ca_bundle,
        )
        await self._publish(read, config)
        kids = plan.key_ids(jwks)
        count = len(jwks["keys"])
        outcome = conditions.ready(
            f"{plan.keys_text(count)} of {spec.issuer_url} published (key ids: {', '.join(kids) or 'none'}; "
            f"algorithms: {', '.join(algorithms)}){plan.unused_features(spec, discovery)}",
            reason="ProviderReady",
            details=(plan.current_keys(count, now),),
        )
        fields = {
            "endpoints": plan.endpoints_status(discovery),
            "keyIDs": kids,
            "keyCount": count,
            "lastRefreshTime": format_time(now),
        }
        await self._status.write(body, outcome, fields, now=now)
        return self._result(read, outcome, spec.issuer_url)

    # --- the ways it can fail -------------------------------------------------------------------------

    async def _unreachable(
        self,
        read: _Read,
        spec: OIDCProviderSpec,
        problem: plan.Problem,
        *,
        secret: str | None,
        ca_bundle: str | None,
    ) -> ProviderReconciled:
        """The issuer cannot be read now: keep the last good keys published until they are too old."""
        now = self._clock()
        body = read.body
        name = body["metadata"]["name"]
        kept = plan.kept_keys(read.previous, issuer_url=spec.issuer_url, now=now, max_age=self._max_age)
        previous = read.previous
        if previous is not None and previous.issuer == spec.issuer_url:
            discovery = plan.discovery_of(previous)
            config = plan.provider_config(
                name=name,
                generation=int(body["metadata"].get("generation") or 0),
                spec=spec,
                discovery=discovery,
                algorithms=allowed_algorithms(spec.algorithms, previous.algorithms),
                jwks=kept.jwks,
                keys_fetched_at=previous.keys_fetched_at,
                secret=secret,
                ca_bundle=ca_bundle,
            )
            await self._publish(read, config)
            endpoints: dict[str, str] | None = plan.endpoints_status(discovery)
        else:
            # Nothing good was ever read from this issuer: there is nothing to keep.
            await self._withdraw(read)
            endpoints = None
        log.warning("OIDCProvider %s: %s; %s", name, problem.message, kept.detail.message)
        outcome = conditions.retrying(
            problem.reason, f"{problem.message}; retrying. {kept.detail.message}", details=(kept.detail,)
        )
        status = body.get("status") or {}
        fields = {
            "endpoints": endpoints,
            "keyIDs": plan.key_ids(kept.jwks),
            "keyCount": len(kept.jwks["keys"]),
            "lastRefreshTime": status.get("lastRefreshTime"),
        }
        await self._status.write(body, outcome, fields, now=now)
        return self._result(read, outcome, spec.issuer_url, keys_until=kept.until)

    async def _stalled(self, read: _Read, problem: plan.Problem, *, issuer: str | None) -> ProviderReconciled:
        """Bad input: nothing is published until it is fixed (a wrong issuer, private keys, no credentials)."""
        await self._withdraw(read)
        outcome = conditions.stalled(problem.reason, problem.message, details=(plan.nothing_published(problem.reason),))
        status = read.body.get("status") or {}
        fields: dict[str, Any] = {
            "endpoints": None,  # nothing is published: endpoints of an earlier issuer would mislead
            "keyIDs": [],
            "keyCount": 0,
            "lastRefreshTime": status.get("lastRefreshTime"),
        }
        await self._status.write(read.body, outcome, fields, now=self._clock())
        return self._result(read, outcome, issuer)

    def _result(
        self, read: _Read, outcome: Outcome, issuer: str | None, *, keys_until: datetime | None = None
    ) -> ProviderReconciled:
        return ProviderReconciled(
            outcome=outcome,
            issuer=issuer,
            secret_ref=read.secret_ref,
            secret_version=read.secret_version,
            keys_until=keys_until,
        )

    # --- reads ------------------------------------------------------------------------------------------

    async def _get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self._client.get(path)
        except NotFound:
            return None

    async def _client_secret(self, read: _Read, spec: OIDCProviderSpec) -> str | None:
        ref = spec.client_secret_ref
        if ref is None:
            return None
        read.secret_ref = (ref.namespace, ref.name)
        secret = await self._get(path_for(plural="secrets", namespace=ref.namespace, name=ref.name))
        read.secret_version = None if secret is None else str(secret["metadata"].get("resourceVersion"))
        return plan.client_secret(secret, ref)

    async def _check_unique_issuer(self, body: dict[str, Any], spec: OIDCProviderSpec) -> None:
        """Tokens name one issuer: of two providers with the same one, the older keeps it."""
        items, _ = await self._client.list_all(OIDCProvider.path())
        meta = body["metadata"]

        def age(item: dict[str, Any]) -> tuple[str, str]:
            return str(item["metadata"].get("creationTimestamp") or ""), str(item["metadata"]["name"])

        older = sorted(
            age(i)[1]
            for i in items
            if i["metadata"]["name"] != meta["name"]
            and not i["metadata"].get("deletionTimestamp")
            and (i.get("spec") or {}).get("issuerURL") == spec.issuer_url
            and age(i) < age(body)
        )
        if older:
            raise plan.Problem(
                "DuplicateIssuer",
                f"OIDCProvider {older[0]} already has issuer {spec.issuer_url}: a token names one issuer, so only "
                "one provider can verify it; delete one of the two, or merge their settings into one",
            )

    # --- writes -----------------------------------------------------------------------------------------

    async def _publish(self, read: _Read, config: ProviderConfig) -> None:
        """Write the published Secret when its content changed."""
        published = read.published
        if published is not None and (published.get("data") or {}).get(DATA_KEY) == encode(config):
            return
        meta = read.body["metadata"]
        owner = {
            "apiVersion": OIDCProvider.api_version,
            "kind": OIDCProvider.kind,
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
        }
        body = secret_body(config, namespace=self._namespace, owner=owner)
        if published is None:
            await self._client.create(path_for(plural="secrets", namespace=self._namespace), body)
        else:
            body["metadata"]["resourceVersion"] = published["metadata"]["resourceVersion"]
            await self._client.replace(self._published_path(meta["name"]), body)
        log.info(
            "OIDCProvider %s: published %s of %s (read at %s)",
            meta["name"],
            plan.keys_text(len(config.jwks.get("keys") or [])),
            config.issuer,
            format_time(config.keys_fetched_at) if config.keys_fetched_at else "never",
        )

    async def _withdraw(self, read: _Read) -> None:
        if read.published is None:
            return
        with contextlib.suppress(NotFound):
            await self._client.delete(self._published_path(read.body["metadata"]["name"]))
        log.info("OIDCProvider %s: its config is withdrawn", read.body["metadata"]["name"])


def _spec(body: dict[str, Any]) -> OIDCProviderSpec:
    try:
        resource = OIDCProvider.from_wire(body)
    except (ValidationError, ValueError) as exc:
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in (exc.errors(include_input=False) if isinstance(exc, ValidationError) else [])
        ) or str(exc)
        raise _InvalidSpec(plan.Problem("InvalidSpec", f"the spec is invalid: {summary}")) from None
    assert isinstance(resource, OIDCProvider)
    return resource.spec


def _decode_published(secret: dict[str, Any] | None, name: str) -> ProviderConfig | None:
    if secret is None:
        return None
    try:
        return decode((secret.get("data") or {}).get(DATA_KEY, ""))
    except ValueError as exc:
        log.warning("OIDCProvider %s: its published config is unreadable (%s); it will be rewritten", name, exc)
        return None
