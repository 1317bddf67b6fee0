"""What every kubegate custom resource declares about itself, for the CRD and for the API calls."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from kubegate.contracts.api_paths import path_for
from kubegate.resources.common import API_VERSION, GROUP, VERSION, Model


class ResourceKind(Model):
    """A top-level custom resource: `apiVersion`, `kind`, `metadata`, `spec`, `status`.

    Subclasses declare `spec` and `status` fields and the class attributes below, from which the CRD
    is generated.
    """

    kind: ClassVar[str]
    plural: ClassVar[str]
    singular: ClassVar[str]
    short_names: ClassVar[tuple[str, ...]]
    namespaced: ClassVar[bool]
    printer_columns: ClassVar[tuple[dict[str, str], ...]]
    categories: ClassVar[tuple[str, ...]] = ("kubegate",)
    group: ClassVar[str] = GROUP
    version: ClassVar[str] = VERSION
    api_version: ClassVar[str] = API_VERSION

    metadata: dict[str, Any] = Field(default_factory=dict)
    """Standard object metadata; Kubernetes owns its schema."""

    @classmethod
    def crd_name(cls) -> str:
        return f"{cls.plural}.{cls.group}"

    @classmethod
    def path(cls, *, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The REST path of this kind's collection (in `namespace`, or across all) or of one object."""
        return path_for(
            group=cls.group,
            version=cls.version,
            plural=cls.plural,
            namespace=namespace,
            name=name,
            subresource=subresource,
        )

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> ResourceKind:
        """Read an object as the API server returns it (apiVersion and kind are checked, then dropped)."""
        if obj.get("apiVersion") != cls.api_version or obj.get("kind") != cls.kind:
            raise ValueError(
                f"expected apiVersion {cls.api_version} and kind {cls.kind}, "
                f"got {obj.get('apiVersion')!r} and {obj.get('kind')!r}"
            )
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        return cls.model_validate(body)

    def to_wire(self) -> dict[str, Any]:
        return {"apiVersion": self.api_version, "kind": self.kind, **super().to_wire()}
