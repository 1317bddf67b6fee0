"""AARC-G069 entitlements: parsing, matching, and entitlement requirements with all / one / N."""

from __future__ import annotations

from typing import Any

import pytest
from fake_request import authentication
from hypothesis import given
from hypothesis import strategies as st

from kubegate.verify.entitlements import Entitlement, parse, parse_or_none
from kubegate.verify.requirements import Requirement

PHYSICS = "urn:geant:example.org:group:physics#sso.example.org"
HIGGS_ADMIN = "urn:geant:example.org:group:physics:higgs:role=admin#sso.example.org"


def satisfies(held: str, required: str) -> bool:
    entitlement = parse_or_none(held)
    return entitlement is not None and entitlement.satisfies(parse(required))


def test_parse_reads_every_part() -> None:
    assert parse("urn:GEANT:example.org:unit:lab:group:physics:higgs:role=admin#sso.example.org") == Entitlement(
        nid="geant",
        namespace=("example.org", "unit", "lab"),
        group=("physics", "higgs"),
        role="admin",
        authority="sso.example.org",
    )
    plain = parse(PHYSICS)
    assert (plain.namespace, plain.group, plain.role) == (("example.org",), ("physics",), None)


def test_the_first_group_marker_after_the_namespace_starts_the_group_path() -> None:
    # A subgroup may be called "group"; the delegated namespace itself may be too.
    assert parse("urn:geant:example.org:group:a:group:b#x").group == ("a", "group", "b")
    assert parse("urn:geant:group:group:a#x").namespace == ("group",)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no group authority"),
        ("urn:geant:example.org:group:physics", "no group authority"),
        ("urn:geant:example.org:group:physics#", "no group authority"),
        ("physics#sso", "does not start with urn"),
        ("urx:geant:example.org:group:physics#sso", "does not start with urn"),
        ("urn:geant:group:physics#sso", "does not start with urn"),
        ("urn:g:example.org:group:physics#sso", "namespace identifier"),
        ("urn:-geant:example.org:group:physics#sso", "namespace identifier"),
        ("urn:geant:example.org::group:physics#sso", "empty part"),
        ("urn:geant:example.org:group:physics:#sso", "empty part"),
        ("urn:geant:example.org:physics:higgs#sso", "no ':group:'"),
        ("urn:geant:example.org:group:role=admin#sso", "names no group"),
        ("urn:geant:example.org:group:physics:role=#sso", "role is empty"),
        ("urn:geant:example.org:group:physics:role=a:higgs#sso", "'role=' may only be the last"),
        ("urn:geant:example.org:group:phy sics#sso", "space"),
        ("urn:geant:example.org:group:physics#sso example", "space"),
        ("urn:geant:example.org:group:physïcs#sso", "non-ASCII"),
        ("urn:geant:example.org:group:physics\n#sso", "control"),
    ],
)
def test_parse_says_what_is_wrong_and_which_shape_is_expected(text: str, why: str) -> None:
    with pytest.raises(ValueError, match="is not an AARC-G069 entitlement") as refused:
        parse(text)
    assert why in str(refused.value)
    assert "urn:<NID>:<namespace>" in str(refused.value)
    assert parse_or_none(text) is None


def test_the_error_message_does_not_repeat_an_endless_value() -> None:
    with pytest.raises(ValueError, match="not an AARC-G069 entitlement") as refused:
        parse("x" * 100_000)
    assert len(str(refused.value)) < 500


@pytest.mark.parametrize("value", [None, 1, ["urn:geant:example.org:group:physics#sso"], {"a": "b"}])
def test_parse_or_none_takes_anything(value: Any) -> None:
    assert parse_or_none(value) is None


@pytest.mark.parametrize(
    ("held", "required", "expected"),
    [
        (PHYSICS, PHYSICS, True),
        (HIGGS_ADMIN, PHYSICS, True),  # a subgroup member is a member of the parent, with any role
        (PHYSICS, HIGGS_ADMIN, False),  # a parent group member is not in the subgroup
        (HIGGS_ADMIN, "urn:geant:example.org:group:physics:higgs:role=admin#sso.example.org", True),
        (HIGGS_ADMIN, "urn:geant:example.org:group:physics:higgs:role=member#sso.example.org", False),
        (HIGGS_ADMIN, "urn:geant:example.org:group:physics:role=admin#sso.example.org", True),
        (
            "urn:geant:example.org:group:physics#sso.example.org",
            "urn:geant:example.org:group:physics:role=admin#sso.example.org",
            False,
        ),
        (PHYSICS, "urn:geant:example.org:group:physics#other.example.org", False),  # another authority
        (PHYSICS, "urn:geant:example.org:group:physics#SSO.example.org", False),  # authority compared exactly
        (PHYSICS, "urn:geant:example.com:group:physics#sso.example.org", False),  # another namespace
        (PHYSICS, "urn:geant:example.org:lab:group:physics#sso.example.org", False),  # a subnamespace
        (PHYSICS, "urn:mace:example.org:group:physics#sso.example.org", False),  # another NID
        (PHYSICS, "URN:Geant:example.org:group:physics#sso.example.org", True),  # NID without regard to case
        (PHYSICS, "urn:geant:Example.org:group:physics#sso.example.org", False),  # the rest exactly
        (PHYSICS, "urn:geant:example.org:group:Physics#sso.example.org", False),
        (
            "urn:geant:example.org:group:physics:highs#sso.example.org",
            "urn:geant:example.org:group:physics:higgs#sso.example.org",
            False,
        ),
        ("urn:geant:example.org:group:physicsX#sso.example.org", PHYSICS, False),  # not a string prefix
        ("urn:geant:ex%2fample:group:a#sso", "urn:geant:ex%2Fample:group:a#sso", True),  # RFC 8141 escapes
        ("urn:geant:example.org:group:physics", PHYSICS, False),  # an unparseable held value
    ],
)
def test_matching(held: str, required: str, expected: bool) -> None:
    assert satisfies(held, required) is expected


# Open-ended entitlements, built from small pools so that they often share parts.
segments = st.sampled_from(["a", "b", "physics", "higgs", "group", "x-1", "%2f", "%2F"])
nids = st.sampled_from(["geant", "GEANT", "mace", "ab"])
roles = st.one_of(st.none(), st.sampled_from(["admin", "member", "a=b"]))
authorities = st.sampled_from(["sso.example.org", "idp.example.com", "sso.example.org#2"])


@st.composite
def entitlements(draw: st.DrawFn) -> str:
    namespace = draw(st.lists(segments.filter(lambda s: s != "group"), min_size=1, max_size=3))
    group = draw(st.lists(segments, min_size=1, max_size=4))
    role = draw(roles)
    suffix = f":role={role}" if role is not None else ""
    return f"urn:{draw(nids)}:{':'.join(namespace)}:group:{':'.join(group)}{suffix}#{draw(authorities)}"


def parents(text: str) -> list[str]:
    """Every entitlement `text` must satisfy: each ancestor group, with and without its own role."""
    entitlement = parse(text)
    found = []
    for depth in range(1, len(entitlement.group) + 1):
        group = ":".join(entitlement.group[:depth])
        base = f"urn:{entitlement.nid}:{':'.join(entitlement.namespace)}:group:{group}"
        found.append(f"{base}#{entitlement.authority}")
        if entitlement.role is not None:
            found.append(f"{base}:role={entitlement.role}#{entitlement.authority}")
    return found


@given(held=entitlements())
def test_any_entitlement_satisfies_itself_and_every_parent_group(held: str) -> None:
    assert satisfies(held, held)
    for parent in parents(held):
        assert satisfies(held, parent)


@given(held=entitlements(), required=entitlements())
def test_never_satisfies_one_of_another_authority_or_namespace(held: str, required: str) -> None:
    have, want = parse(held), parse(required)
    if have.authority != want.authority or have.namespace != want.namespace or have.nid != want.nid:
        assert not have.satisfies(want)


@given(held=entitlements(), required=entitlements())
def test_satisfying_means_a_group_prefix_and_a_matching_role(held: str, required: str) -> None:
    have, want = parse(held), parse(required)
    if have.satisfies(want):
        assert have.group[: len(want.group)] == want.group
        assert want.role in (None, have.role)
        assert len(want.group) <= len(have.group)


@given(a=entitlements(), b=entitlements(), c=entitlements())
def test_satisfaction_is_transitive(a: str, b: str, c: str) -> None:
    if satisfies(a, b) and satisfies(b, c):
        assert satisfies(a, c)


@given(text=st.text(max_size=120))
def test_parse_raises_only_value_error_and_round_trips_what_it_accepts(text: str) -> None:
    try:
        entitlement = parse(text)
    except ValueError:
        return
    assert parse(text) == entitlement
    assert entitlement.satisfies(entitlement)


# Entitlement requirements: all / one / N over entitlements, reported like other requirements.

CLAIM = "eduperson_entitlement"
OPS = "urn:geant:example.org:group:ops#sso.example.org"
DEV = "urn:geant:example.org:group:dev:role=lead#sso.example.org"


def requirement(values: tuple[str, ...], match: Any) -> Requirement:
    return Requirement(values, match, CLAIM, entitlements=True)


def test_a_requirement_with_a_value_that_is_not_an_entitlement_is_refused_when_made() -> None:
    with pytest.raises(ValueError, match="'admins' is not an AARC-G069 entitlement"):
        requirement((PHYSICS, "admins"), "one")
    # The same values as plain claim values are fine.
    assert Requirement((PHYSICS, "admins"), "one", CLAIM).values == (PHYSICS, "admins")


@pytest.mark.parametrize(
    ("match", "held", "expected"),
    [
        ("all", [HIGGS_ADMIN, OPS, "urn:geant:example.org:group:dev:sub:role=lead#sso.example.org"], True),
        ("all", [HIGGS_ADMIN, OPS], False),
        ("one", ["urn:geant:example.org:group:dev:role=member#sso.example.org"], False),
        ("one", ["urn:geant:example.org:group:ops:night#sso.example.org"], True),
        (2, [HIGGS_ADMIN, "garbage", OPS], True),
        (2, [HIGGS_ADMIN, HIGGS_ADMIN], False),  # one held value counted once
        (2, [PHYSICS.replace("sso", "idp"), OPS], False),
    ],
)
def test_all_one_and_n_over_entitlements(match: Any, held: list[str], expected: bool) -> None:
    assert requirement((PHYSICS, OPS, DEV), match).evaluate({CLAIM: held}).satisfied is expected


def test_one_held_entitlement_may_satisfy_several_required_ones() -> None:
    parent_and_child = requirement((PHYSICS, "urn:geant:example.org:group:physics:higgs#sso.example.org"), "all")
    assert parent_and_child.evaluate({CLAIM: HIGGS_ADMIN}).satisfied


@pytest.mark.parametrize("junk", [None, 3, [1, 2], {"a": PHYSICS}, [None, ["x"]], "not an entitlement", ""])
def test_held_values_that_are_not_entitlements_satisfy_nothing(junk: Any) -> None:
    for match in ("all", "one", 1):
        assert not requirement((PHYSICS,), match).evaluate({CLAIM: junk}).satisfied


def test_the_refusal_names_the_claim_the_values_and_the_match() -> None:
    result = requirement((PHYSICS, OPS, DEV), 2).evaluate({CLAIM: [OPS, "urn:x"]})
    assert not result.satisfied
    assert result.present == (OPS,)
    assert result.detail() == {
        "requirement": "entitlement",
        "claim": CLAIM,
        "atLeast": 2,
        "of": [PHYSICS, OPS, DEV],
        "missing": [PHYSICS, DEV],
    }
    assert result.message("alice") == (
        f"access requires the claim {CLAIM} to grant at least 2 of the entitlements {PHYSICS}, {OPS}, {DEV}; "
        f"alice is not granted {PHYSICS}, {DEV}"
    )
    one = requirement((PHYSICS,), "one").evaluate({})
    assert one.detail() == {"requirement": "entitlement", "claim": CLAIM, "anyOf": [PHYSICS]}
    assert one.message("alice") == (
        f"access requires the claim {CLAIM} to grant one of the entitlements {PHYSICS}; alice is granted none of them"
    )
    every = requirement((PHYSICS,), "all").evaluate({})
    assert every.detail() == {"requirement": "entitlement", "claim": CLAIM, "allOf": [PHYSICS], "missing": [PHYSICS]}
    assert requirement((PHYSICS,), "all").describe() == f"claim {CLAIM} granting all of the entitlements {PHYSICS}"


def test_entitlements_on_the_groups_claim_read_the_identity_groups() -> None:
    caller = authentication(HIGGS_ADMIN, claims={"groups": ["other"]})
    assert Requirement((PHYSICS,), "one", entitlements=True).evaluate(caller).satisfied


@given(held=st.lists(entitlements(), max_size=5), required=st.lists(entitlements(), min_size=1, max_size=4))
def test_all_implies_n_implies_one_for_entitlements(held: list[str], required: list[str]) -> None:
    values = tuple(required)
    outcome = {match: requirement(values, match).evaluate({CLAIM: held}).satisfied for match in ("all", 2, "one")}
    if outcome["all"]:
        assert outcome[2]
    if outcome[2]:
        assert outcome["one"]
    assert outcome["one"] == any(satisfies(h, r) for h in held for r in required)
