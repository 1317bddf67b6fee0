"""Requirements on groups and claims: all, one, or at least N of a list of values, as FLAAT's `match`. Pure.

One module for every check of the kind: token-management permissions ("one of the admin groups"), forward
auth's `?group=` ("all of these"), and requirements on any claim (an OIDC provider's `requirements`,
including AARC-G069 entitlements, see `entitlements`). A claim holds a string or a list of strings: a
string counts as a list of one, and a value that is not a string (a number, a list of numbers, an object)
never satisfies anything, whatever it prints as.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from kubegate.contracts.authentication import Authentication, Identity
from kubegate.verify import entitlements as aarc

GROUPS = "groups"
"""The claim an identity's groups are read from: `Identity.groups`, whatever the credential's kind."""

Match: TypeAlias = Literal["all", "one"] | int
Subject: TypeAlias = Authentication | Identity | Mapping[str, Any]
"""What a requirement is checked against: a verification's result, or bare claims."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """`claim` must hold `match` of `values`: all of them, one of them, or at least N (N above the number of
    distinct values means all of them).

    Order and repetition of `values` do not matter. No values at all: `all` is met by anyone, `one` and N
    by nobody (no one is a member of none of no groups).

    `entitlements`: the values are AARC-G069 entitlements, and a value is held when the claim holds an
    entitlement that satisfies it (a subgroup, any role when none is required, see `entitlements`) rather
    than the same string. A required value that is not an entitlement is refused here, with ValueError.
    """

    values: tuple[str, ...]
    match: Match = "all"
    claim: str = GROUPS
    entitlements: bool = False
    """The values are AARC-G069 entitlements (see `entitlements.py`): a held subgroup satisfies its parent."""
    _required: tuple[aarc.Entitlement, ...] = field(default=(), init=False, repr=False, compare=False)
    """The parsed values, in order, when `entitlements`."""

    def __post_init__(self) -> None:
        if isinstance(self.match, bool) or not (
            self.match in ("all", "one") or (isinstance(self.match, int) and self.match >= 1)
        ):
            raise ValueError(f"match must be 'all', 'one' or a whole number of at least 1, not {self.match!r}")
        if self.entitlements:
            object.__setattr__(self, "_required", tuple(aarc.parse(value) for value in self.values))

    @classmethod
    def all_of(cls, values: Iterable[str], *, claim: str = GROUPS) -> Requirement:
        return cls(tuple(values), "all", claim)

    @classmethod
    def one_of(cls, values: Iterable[str], *, claim: str = GROUPS) -> Requirement:
        return cls(tuple(values), "one", claim)

    @property
    def needed(self) -> int:
        """How many distinct values must be held."""
        distinct = len(set(self.values))
        if self.match == "all":
            return distinct
        return max(1, min(1 if self.match == "one" else self.match, distinct))

    def describe(self) -> str:
        """The requirement in words, for listings: "in one of the groups a, b"."""
        listed, quantity = self._words()
        if self.entitlements:
            return f"claim {self.claim} granting {quantity} the entitlements {listed}"
        if self.claim == GROUPS:
            return f"in {quantity} the groups {listed}"
        return f"claim {self.claim} holding {quantity} the values {listed}"

    def _words(self) -> tuple[str, str]:
        """The listed values and how many of them are needed, in words ("a, b", "one of")."""
        listed = ", ".join(self.values) or "(none configured)"
        return listed, {"all": "all of", "one": "one of"}.get(str(self.match), f"at least {self.match} of")

    def evaluate(self, subject: Subject) -> Result:
        held = held_values(subject, self.claim)
        if self.entitlements:
            return self._evaluate_entitlements(held)
        distinct = dict.fromkeys(self.values)
        present = tuple(v for v in distinct if v in held)
        missing = tuple(v for v in distinct if v not in held)
        return Result(self, present=present, missing=missing)

    def _evaluate_entitlements(self, held: tuple[str, ...]) -> Result:
        parsed = [entitlement for entitlement in map(aarc.parse_or_none, dict.fromkeys(held)) if entitlement]
        found: dict[str, bool] = {}
        for value, required in zip(self.values, self._required, strict=True):
            if value not in found:
                found[value] = any(entitlement.satisfies(required) for entitlement in parsed)
        present = tuple(v for v, met in found.items() if met)
        missing = tuple(v for v, met in found.items() if not met)
        return Result(self, present=present, missing=missing)


@dataclass(frozen=True, slots=True)
class Result:
    """Whether a requirement is met, and which of its values are held and which are not (each once, in the
    requirement's order)."""

    requirement: Requirement
    present: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def satisfied(self) -> bool:
        return len(self.present) >= self.requirement.needed

    def detail(self) -> dict[str, Any]:
        """The requirement as an error's metadata: `{"requirement": "group", "anyOf": [...]}` for one of some
        groups, `{"requirement": "group", "allOf": [...], "missing": [...]}` for all of them, `atLeast` and
        `of` for N of them; a claim other than groups says `"requirement": "claim"` and names the claim, and
        entitlements say `"requirement": "entitlement"` and name the claim."""
        requirement = self.requirement
        detail: dict[str, Any]
        if requirement.entitlements:
            detail = {"requirement": "entitlement", "claim": requirement.claim}
        elif requirement.claim == GROUPS:
            detail = {"requirement": "group"}
        else:
            detail = {"requirement": "claim", "claim": requirement.claim}
        values = list(requirement.values)
        if requirement.match == "one":
            detail["anyOf"] = values
            return detail
        if requirement.match == "all":
            detail["allOf"] = values
        else:
            detail["atLeast"] = requirement.match
            detail["of"] = values
        detail["missing"] = list(self.missing)
        return detail

    def message(self, who: str, *, action: str | None = None) -> str:
        """Why `who` is refused, for a 403: what `action` (such as "listing tokens") requires and what `who`
        lacks."""
        requirement = self.requirement
        missing = ", ".join(self.missing)
        groups = requirement.claim == GROUPS and not requirement.entitlements
        if groups and action is None and requirement.match == "all":
            return f"{who} is not a member of the required groups {missing}"
        listed, quantity = requirement._words()
        if requirement.entitlements:
            needs = f"the claim {requirement.claim} to grant {quantity} the entitlements {listed}"
            lacks = "is granted none of them" if requirement.match == "one" else f"is not granted {missing}"
        elif groups:
            needs = f"membership in {quantity} the groups {listed}"
            lacks = "is not a member" if requirement.match == "one" else f"is not a member of {missing}"
        else:
            needs = f"the claim {requirement.claim} to hold {quantity} the values {listed}"
            lacks = "holds none of them" if requirement.match == "one" else f"does not hold {missing}"
        return f"{action or 'access'} requires {needs}; {who} {lacks}"


def held_values(subject: Subject, claim: str) -> tuple[str, ...]:
    """The string values `subject` holds in `claim`. For an identity, groups are `Identity.groups` (what its
    method granted) and other claims come from its verified claims."""
    if isinstance(subject, Authentication):
        subject = subject.identity
    if isinstance(subject, Identity):
        if claim == GROUPS:
            return subject.groups
        subject = subject.claims
    value = subject.get(claim)
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(v for v in value if isinstance(v, str))
    return ()
