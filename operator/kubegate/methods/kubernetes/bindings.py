"""Which service accounts may exchange their tokens, and the groups each gets. Pure; no I/O.

As Vault's `bound_service_account_names` / `bound_service_account_namespaces`: a binding matches when
the namespace and the service-account name both match one of its globs (and, when it has one, the
namespace's labels match its selector). Every matching binding adds its groups; none matching refuses.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

Glob = Annotated[str, Field(min_length=1, max_length=253)]


class Binding(BaseModel):
    """Service accounts allowed to exchange their tokens, and what they get."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    namespaces: Annotated[tuple[Glob, ...], Field(min_length=1)]
    """Globs of namespaces, such as `team-*`; `*` for every namespace."""
    service_accounts: Annotated[tuple[Glob, ...], Field(min_length=1)]
    """Globs of service-account names, such as `deployer` or `ci-*`."""
    namespace_labels: dict[str, str] | None = None
    """When set, the namespace must carry all these labels (a matchLabels selector)."""
    groups: tuple[Annotated[str, Field(min_length=1, max_length=253)], ...] = ()
    """Groups granted to the client token."""

    def matches(self, namespace: str, name: str, labels: Mapping[str, str] | None) -> bool:
        if not self.names_match(namespace, name):
            return False
        if self.namespace_labels:
            return labels is not None and all(labels.get(k) == v for k, v in self.namespace_labels.items())
        return True

    def names_match(self, namespace: str, name: str) -> bool:
        """Whether the namespace and the service-account name match; the labels are not looked at."""
        return self.namespace_matches(namespace) and any(fnmatch.fnmatchcase(name, g) for g in self.service_accounts)

    def namespace_matches(self, namespace: str) -> bool:
        return any(fnmatch.fnmatchcase(namespace, g) for g in self.namespaces)


_BINDINGS = TypeAdapter(tuple[Binding, ...])


class BindingsError(ValueError):
    """The bindings file cannot be read or is invalid; the message names the file and the fields."""


class Refusal(Exception):  # noqa: N818 - names the outcome
    """No binding admits this service account; the message says which rule refused it."""


def may_admit(bindings: Sequence[Binding], namespace: str, name: str) -> bool:
    """Whether some binding could admit `namespace/name`, its namespace's labels unknown (they need an API
    read): False means refused whatever the labels."""
    return any(b.names_match(namespace, name) for b in bindings)


def needs_namespace_labels(bindings: Sequence[Binding], namespace: str, name: str) -> bool:
    """Whether deciding needs the namespace's labels (one API read, cached by the caller)."""
    return any(b.namespace_labels and b.names_match(namespace, name) for b in bindings)


def groups_for(
    bindings: Sequence[Binding], namespace: str, name: str, labels: Mapping[str, str] | None
) -> tuple[str, ...]:
    """The groups granted to `namespace/name`; raises Refusal naming the rule that refused it."""
    matched = [b for b in bindings if b.matches(namespace, name, labels)]
    if not matched:
        if not any(b.namespace_matches(namespace) for b in bindings):
            raise Refusal(f"namespace {namespace!r} is not allowed to exchange service-account tokens")
        if not may_admit(bindings, namespace, name):
            raise Refusal(f"service account {name!r} in namespace {namespace!r} is not allowed to exchange tokens")
        raise Refusal(f"namespace {namespace!r} does not carry the labels a binding requires")
    groups: dict[str, None] = {}
    for binding in matched:
        groups.update(dict.fromkeys(binding.groups))
    return tuple(groups)


def load(path: Path) -> tuple[Binding, ...]:
    """Read bindings from a YAML (or JSON) file: a list of bindings. Raises BindingsError saying what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BindingsError(f"cannot read service-account bindings from {path}: {exc}") from exc
    try:
        return _BINDINGS.validate_python(raw or ())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BindingsError(f"invalid service-account bindings in {path}: {problems}") from exc
