"""Group and claim requirements: all, one or N of a list, as FLAAT's `match`."""

from __future__ import annotations

import random
from typing import Any

import pytest
from fake_request import authentication as verified
from hypothesis import given
from hypothesis import strategies as st

from kubegate.contracts.authentication import Authentication, Method
from kubegate.verify.requirements import Requirement

# A small pool, so that required and held values overlap often.
names = st.sampled_from(["admins", "ops", "deployers", "readers", "a", "b"])
required = st.lists(names, min_size=1, max_size=8)
held = st.lists(names, max_size=8)
counts = st.integers(min_value=1, max_value=10)
not_strings = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(), st.dictionaries(names, names)
)


def claims(values: list[Any], claim: str = "entitlements") -> dict[str, Any]:
    return {claim: values}


def satisfied(values: list[str], match: Any, holding: list[str]) -> bool:
    return Requirement(tuple(values), match, "entitlements").evaluate(claims(holding)).satisfied


@given(values=required, holding=held, n=counts)
def test_all_implies_n_implies_one(values: list[str], holding: list[str], n: int) -> None:
    if satisfied(values, "all", holding):
        assert satisfied(values, n, holding)
    if satisfied(values, n, holding):
        assert satisfied(values, "one", holding)


@given(values=required, holding=held)
def test_one_is_a_single_match_and_all_is_as_many_as_there_are_values(values: list[str], holding: list[str]) -> None:
    assert satisfied(values, 1, holding) == satisfied(values, "one", holding) == bool(set(values) & set(holding))
    everything = len(set(values))
    assert satisfied(values, everything, holding) == satisfied(values, "all", holding) == (set(values) <= set(holding))
    # More than there are values means all of them (FLAAT caps N at the number of values).
    assert satisfied(values, everything + 3, holding) == satisfied(values, "all", holding)


@given(values=required, holding=held, n=counts)
def test_n_of_counts_the_distinct_values_held(values: list[str], holding: list[str], n: int) -> None:
    assert satisfied(values, n, holding) == (len(set(values) & set(holding)) >= min(n, len(set(values))))


@given(values=required, holding=held, match=st.one_of(st.just("all"), st.just("one"), counts))
def test_present_and_missing_split_the_required_values(values: list[str], holding: list[str], match: Any) -> None:
    result = Requirement(tuple(values), match, "entitlements").evaluate(claims(holding))
    assert set(result.present) | set(result.missing) == set(values)
    assert not set(result.present) & set(result.missing)
    assert set(result.present) <= set(holding)
    assert len(result.present) == len(set(result.present))
    assert len(result.missing) == len(set(result.missing))


@given(values=required, holding=held, match=st.one_of(st.just("all"), st.just("one"), counts), seed=st.randoms())
def test_order_and_repetition_do_not_matter(
    values: list[str], holding: list[str], match: Any, seed: random.Random
) -> None:
    shuffled_values = values + values[: len(values) // 2]
    shuffled_holding = holding * 2
    seed.shuffle(shuffled_values)
    seed.shuffle(shuffled_holding)
    first = Requirement(tuple(values), match, "entitlements").evaluate(claims(holding))
    second = Requirement(tuple(shuffled_values), match, "entitlements").evaluate(claims(shuffled_holding))
    assert first.satisfied == second.satisfied
    assert set(first.present) == set(second.present)
    assert set(first.missing) == set(second.missing)


@given(values=required, junk=st.lists(not_strings, max_size=5), match=st.one_of(st.just("all"), st.just("one"), counts))
def test_values_that_are_not_strings_never_satisfy(values: list[str], junk: list[Any], match: Any) -> None:
    requirement = Requirement(tuple(values), match, "entitlements")
    assert not requirement.evaluate(claims(junk)).satisfied
    for scalar in junk:
        assert not requirement.evaluate({"entitlements": scalar}).satisfied
    numbered = Requirement(("1", "true"), "one", "level")
    assert not numbered.evaluate({"level": [1, True]}).satisfied
    assert not numbered.evaluate({"level": 1}).satisfied


@given(values=required, value=names, match=st.one_of(st.just("all"), st.just("one"), counts))
def test_a_string_claim_counts_as_a_list_of_one(values: list[str], value: str, match: Any) -> None:
    requirement = Requirement(tuple(values), match, "entitlements")
    assert requirement.evaluate({"entitlements": value}) == requirement.evaluate({"entitlements": [value]})


def test_a_missing_claim_satisfies_nothing_but_an_empty_all() -> None:
    assert not Requirement(("a",), "all", "email").evaluate({}).satisfied
    assert Requirement((), "all").evaluate({}).satisfied
    # Nobody is a member of one of no groups: an empty list of allowed groups lets no one in.
    assert not Requirement((), "one").evaluate({"groups": ["a"]}).satisfied
    assert not Requirement((), 2).evaluate({"groups": ["a"]}).satisfied


@pytest.mark.parametrize("match", [0, -1, True, "some", "ALL"])
def test_a_match_that_is_not_all_one_or_a_positive_count_is_refused(match: Any) -> None:
    with pytest.raises(ValueError, match="match must be"):
        Requirement(("a",), match)


def _authentication(groups: tuple[str, ...], claims: dict[str, Any]) -> Authentication:
    return verified(*groups, username="alice", method=Method.OIDC, claims=claims)


def test_an_identity_is_checked_on_its_groups_and_its_verified_claims() -> None:
    # Groups are what the method granted, even when the raw claims say otherwise.
    authentication = _authentication(("deployers",), {"groups": ["admins"], "email": "alice@example.com"})
    assert Requirement.one_of(["deployers"]).evaluate(authentication).satisfied
    assert not Requirement.one_of(["admins"]).evaluate(authentication).satisfied
    assert Requirement.one_of(["alice@example.com"], claim="email").evaluate(authentication).satisfied
    assert Requirement.one_of(["deployers"]).evaluate(authentication.identity).satisfied


def test_the_token_permission_refusal_keeps_its_message_and_detail() -> None:
    result = Requirement.one_of(["kubegate:admin"]).evaluate(_authentication(("ci",), {}))
    assert not result.satisfied
    assert result.message("statictoken:team:ci", action="listing tokens") == (
        "listing tokens requires membership in one of the groups kubegate:admin; statictoken:team:ci is not a member"
    )
    assert result.detail() == {"requirement": "group", "anyOf": ["kubegate:admin"]}
    nobody = Requirement.one_of([]).evaluate(_authentication(("ci",), {}))
    assert nobody.message("ci", action="deleting tokens") == (
        "deleting tokens requires membership in one of the groups (none configured); ci is not a member"
    )


def test_the_forward_auth_refusal_keeps_its_message_and_detail() -> None:
    result = Requirement.all_of(["deployers", "admins", "ops"]).evaluate(_authentication(("deployers",), {}))
    assert (
        result.message("statictoken:team:ci")
        == "statictoken:team:ci is not a member of the required groups admins, ops"
    )
    assert result.detail() == {
        "requirement": "group",
        "allOf": ["deployers", "admins", "ops"],
        "missing": ["admins", "ops"],
    }


def test_n_of_and_other_claims_say_what_is_required() -> None:
    result = Requirement(("a", "b", "c"), 2, "entitlements").evaluate({"entitlements": ["a"]})
    assert result.detail() == {
        "requirement": "claim",
        "claim": "entitlements",
        "atLeast": "2",
        "of": ["a", "b", "c"],
        "missing": ["b", "c"],
    }
    assert result.message("alice") == (
        "access requires the claim entitlements to hold at least 2 of the values a, b, c; alice does not hold b, c"
    )
