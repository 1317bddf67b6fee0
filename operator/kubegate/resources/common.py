"""Building blocks shared by every kubegate resource: conditions, status base, model config."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "kubegate.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"

DnsSubdomain = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
DnsLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
SecretKey = Annotated[str, Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)]


def list_set(**extra: Any) -> dict[str, Any]:
    """Schema extras for a list whose items are unique and unordered (merged by server-side apply)."""
    return {"x-kubernetes-list-type": "set", **extra}


class Model(BaseModel):
    """Base of every resource model: camelCase on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON form Kubernetes stores: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(Model):
    """Status is written by the operator, which may be newer than the schema: tolerate unknown fields."""

    model_config = ConfigDict(extra="ignore")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """One observation of the resource's state, in the shape of metav1.Condition (kstatus reads it)."""

    type: Annotated[str, Field(min_length=1, max_length=316)]
    """Kind of condition: Ready, Reconciling or Stalled."""
    status: ConditionStatus
    """Whether the condition holds: True, False or Unknown."""
    reason: Annotated[str, Field(max_length=1024)] = ""
    """One CamelCase word a program can switch on, such as Expired or SecretConflict."""
    message: Annotated[str, Field(max_length=32768)] = ""
    """What happened and, when something is wrong, what to do about it."""
    last_transition_time: datetime | None = None
    """When status last changed."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this condition was computed from."""


Conditions = Annotated[
    list[Condition],
    Field(json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
]
