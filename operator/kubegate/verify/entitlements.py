"""AARC-G069 group entitlements: parsing and matching. Pure.

An entitlement names a group, and optionally a role in it, as a URN with the authority that asserts it:

    urn:<NID>:<delegated namespace>[:<subnamespace>...]:group:<group>[:<subgroup>...][:role=<role>]#<authority>

for example `urn:geant:example.org:group:physics:higgs:role=admin#sso.example.org`. A held entitlement
satisfies a required one when both name the same namespace (the NID compared without regard to case, as
RFC 8141 says), the required group path is a prefix of the held one (a member of a subgroup is a member of
its parent group), the authority is the same, and, when the requirement names a role, the held entitlement
names the same role (a requirement without a role is met with any role or none).

Reading is strict: a value that does not have this shape never satisfies anything, and a required value
that does not have it is refused when the requirement is made (`parse` says what is wrong).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SHAPE = "urn:<NID>:<namespace>[:<subnamespace>...]:group:<group>[:<subgroup>...][:role=<role>]#<authority>"
_NID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,30}[A-Za-z0-9]")
"""RFC 8141's namespace identifier: 2 to 32 letters, digits or hyphens, not starting or ending with one."""
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_GROUP = "group"
_ROLE = "role="


@dataclass(frozen=True, slots=True)
class Entitlement:
    """A parsed entitlement, normalized for comparison: the NID in lower case and percent-escapes in upper
    case (RFC 8141 treats both as equivalent); everything else is compared exactly."""

    nid: str
    namespace: tuple[str, ...]
    """The delegated namespace and its subnamespaces (at least one part)."""
    group: tuple[str, ...]
    """The group and its subgroups, parent first (at least one part)."""
    role: str | None
    authority: str

    def satisfies(self, required: Entitlement) -> bool:
        """Whether holding this entitlement meets `required`."""
        return (
            self.authority == required.authority
            and self.nid == required.nid
            and self.namespace == required.namespace
            and self.group[: len(required.group)] == required.group
            and (required.role is None or self.role == required.role)
        )


def parse(text: str) -> Entitlement:
    """Read an entitlement; raises ValueError saying what is wrong with it and which shape is expected."""
    urn, hash_sign, authority = text.partition("#")
    if not hash_sign or not authority:
        raise _invalid(text, "it has no group authority after '#'")
    for part, where in ((urn, "before"), (authority, "after")):
        if not part.isascii() or not part.isprintable() or " " in part:
            raise _invalid(text, f"the part {where} '#' holds a space, a control or a non-ASCII character")
    parts = urn.split(":")
    if len(parts) < 5 or parts[0].lower() != "urn":
        raise _invalid(text, "it does not start with urn:<NID>:<namespace>:group:<group>")
    nid, rest = parts[1], [_normalize(p) for p in parts[2:]]
    if not _NID.fullmatch(nid):
        raise _invalid(text, f"{nid!r} is not a URN namespace identifier (2-32 letters, digits or hyphens)")
    if "" in rest:
        raise _invalid(text, "it has an empty part between two ':'")
    # The first "group" after the delegated namespace starts the group path, so a subgroup may be named
    # "group" but a subnamespace may not.
    try:
        marker = rest.index(_GROUP, 1)
    except ValueError:
        raise _invalid(text, "it has no ':group:' after the namespace") from None
    namespace, group = tuple(rest[:marker]), rest[marker + 1 :]
    role: str | None = None
    if group and group[-1].startswith(_ROLE):
        role = group.pop()[len(_ROLE) :]
        if not role:
            raise _invalid(text, "its role is empty")
    if not group:
        raise _invalid(text, "it names no group after ':group:'")
    if any(part.startswith(_ROLE) for part in group):
        raise _invalid(text, "'role=' may only be the last part before '#'")
    return Entitlement(nid=nid.lower(), namespace=namespace, group=tuple(group), role=role, authority=authority)


def parse_or_none(text: object) -> Entitlement | None:
    """The entitlement `text` names, or None when it is not a string of the entitlement shape."""
    if not isinstance(text, str):
        return None
    try:
        return parse(text)
    except ValueError:
        return None


def _normalize(part: str) -> str:
    return _PERCENT.sub(lambda escape: escape.group().upper(), part)


def _invalid(text: str, why: str) -> ValueError:
    shown = text if len(text) <= 200 else text[:200] + "..."
    return ValueError(f"{shown!r} is not an AARC-G069 entitlement: {why}; write it as {SHAPE}")
