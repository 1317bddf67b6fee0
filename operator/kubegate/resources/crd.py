"""Generate CustomResourceDefinitions from the resource models.

Pydantic emits JSON Schema (with `$ref`, `anyOf` for optional fields, titles); Kubernetes wants a
structural OpenAPI v3 schema (every node typed, no references). This module converts one into the
other, so the models stay the single source of truth.
"""

from __future__ import annotations

from typing import Any

import yaml

from kubegate.resources.kinds import ResourceKind
from kubegate.resources.oidcprovider import OIDCProvider
from kubegate.resources.statictoken import StaticToken

KINDS: tuple[type[ResourceKind], ...] = (StaticToken, OIDCProvider)

# JSON Schema keywords that a structural schema keeps as they are.
_KEPT = frozenset(
    {
        "description",
        "type",
        "format",
        "enum",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "required",
        "default",
    }
)


class SchemaError(ValueError):
    """The model uses a construct that has no structural-schema equivalent."""


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = defs[ref.removeprefix("#/$defs/")]
    # Field-level keys (description, default) sit beside $ref and win over the model's own.
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _is_int_or_string(options: list[dict[str, Any]]) -> bool:
    return sorted(o.get("type", "") for o in options) == ["integer", "string"]


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Convert one pydantic JSON Schema node (and its children) into a structural schema node."""
    node = _resolve(node, defs)
    options = node.get("anyOf")
    if options is not None:
        non_null = [_resolve(o, defs) for o in options if o.get("type") != "null"]
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        if len(non_null) == 1:
            return structural({**non_null[0], **outer}, defs)
        if _is_int_or_string(non_null):
            # The value rules of each branch live in the CEL rules the field carries.
            result = {k: v for k, v in outer.items() if k in _KEPT or k.startswith("x-kubernetes-")}
            result["x-kubernetes-int-or-string"] = True
            return _ordered(result)
        raise SchemaError(f"cannot express anyOf {options!r} in a structural schema")

    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEPT or k.startswith("x-kubernetes-")}
    if node.get("type") == "object" and "properties" not in node and "additionalProperties" not in node:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "properties" in node:
        out["properties"] = {name: structural(child, defs) for name, child in node["properties"].items()}
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = structural(extra, defs)
    if "items" in node:
        out["items"] = structural(node["items"], defs)
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"schema node without a type: {node!r}")
    if "default" in out and out["default"] is None:
        del out["default"]
    return _ordered(out)


_FIRST = ("description", "type", "format")
_LAST = ("x-kubernetes-validations", "required", "properties", "additionalProperties", "items")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Put keys in a fixed, readable order: what it is first, what it contains last."""
    middle = sorted(k for k in node if k not in _FIRST and k not in _LAST)
    return {k: node[k] for k in (*_FIRST, *middle, *_LAST) if k in node}


def _schema_for(kind: type[ResourceKind]) -> dict[str, Any]:
    raw = kind.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    properties = raw["properties"]
    return {
        "type": "object",
        "description": raw.get("description", ""),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "Versioned schema of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": structural(properties["spec"], defs),
            "status": structural(properties["status"], defs),
        },
    }


def crd_for(kind: type[ResourceKind]) -> dict[str, Any]:
    """The CustomResourceDefinition of one resource kind, as a dict ready to dump."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name(), "labels": {"app.kubernetes.io/part-of": "kubegate"}},
        "spec": {
            "group": kind.group,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": list(kind.categories),
            },
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in kind.printer_columns],
                    "schema": {"openAPIV3Schema": _schema_for(kind)},
                }
            ],
        },
    }


def file_name(kind: type[ResourceKind]) -> str:
    return f"{kind.group}_{kind.plural}.yaml"


HEADER = "# Generated from the pydantic models by `kubegate crds --output-dir crds`. Do not edit.\n"


def render(kind: type[ResourceKind]) -> str:
    """The YAML text of one CRD, deterministic so that a stale file shows up as a diff."""
    body = yaml.safe_dump(crd_for(kind), sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def render_all() -> dict[str, str]:
    """File name -> YAML text for every kubegate CRD."""
    return {file_name(kind): render(kind) for kind in KINDS}
