"""Error bodies read the way Flipt's Go SDK reads them, so that a test fails where that SDK would.

Its HTTP transport unmarshals any answer other than 200 into `google.rpc.Status` with protojson, strictly:
an unknown key, a code that is not an integer or a `details` entry that is not a typed `Any` of a type
the program links in makes the call fail with a parse error instead of the status. Which types resolve
was measured by linking the transport of Flipt v1.61.1 and unmarshalling sample bodies:
`google.protobuf.Struct` resolves; `google.rpc.ErrorInfo` and `google.rpc.BadRequest` do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STRUCT = "type.googleapis.com/google.protobuf.Struct"
RESOLVABLE_DETAIL_TYPES = {STRUCT}
GRPC_CODES = range(17)


@dataclass(frozen=True)
class Status:
    code: int
    message: str
    details: list[dict[str, Any]]
    """The value of each detail (each a Struct: a JSON object)."""

    @property
    def reason(self) -> str:
        """kubegate's own reason, from its detail."""
        (detail,) = [d for d in self.details if d.get("domain") == "kubegate.dev"]
        reason: str = detail["reason"]
        return reason

    @property
    def metadata(self) -> dict[str, Any]:
        (detail,) = [d for d in self.details if d.get("domain") == "kubegate.dev"]
        metadata: dict[str, Any] = detail["metadata"]
        return metadata

    @property
    def fields(self) -> list[str]:
        """The fields named in field violations."""
        return [v["field"] for d in self.details for v in d.get("fieldViolations", [])]


def status_of(body: Any) -> Status:
    """`body` as Flipt's SDK reads an error; fails the test where the SDK could not read it at all."""
    assert isinstance(body, dict), body
    assert set(body) <= {"code", "message", "details"}, f"protojson refuses unknown keys: {body}"
    code, message, details = body.get("code", 0), body.get("message", ""), body.get("details", [])
    assert type(code) is int, f"protojson wants an integer code: {code!r}"
    assert code in GRPC_CODES, f"not a gRPC status code: {code}"
    assert isinstance(message, str), body
    assert isinstance(details, list), body
    values = []
    for detail in details:
        assert isinstance(detail, dict), f"a detail must be a typed Any: {detail!r}"
        assert detail.get("@type") in RESOLVABLE_DETAIL_TYPES, f"Flipt's SDK cannot resolve {detail.get('@type')!r}"
        # A Struct in an Any is written as {"@type", "value": <the JSON object>}.
        assert set(detail) == {"@type", "value"}, detail
        assert isinstance(detail["value"], dict), detail
        values.append(detail["value"])
    return Status(code=code, message=message, details=values)
