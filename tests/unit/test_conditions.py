from datetime import UTC, datetime, timedelta

from kubegate.operator import conditions

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_ready_carries_ready_only() -> None:
    result = conditions.conditions_for(conditions.ready("ok"), generation=3, now=T0, current=None)
    assert [(c["type"], c["status"]) for c in result] == [("Ready", "True")]
    assert result[0]["observedGeneration"] == 3
    assert result[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_stalled_sets_ready_false_and_stalled_true() -> None:
    outcome = conditions.stalled("SecretNotFound", "create it")
    result = conditions.conditions_for(outcome, generation=1, now=T0, current=None)
    assert {c["type"]: c["status"] for c in result} == {"Ready": "False", "Stalled": "True"}
    assert all(c["reason"] == "SecretNotFound" and c["message"] == "create it" for c in result)


def test_expired_is_stalled_so_that_gitops_tools_show_it_degraded() -> None:
    result = conditions.conditions_for(conditions.expired("gone"), generation=1, now=T0, current=None)
    assert [(c["type"], c["status"], c["reason"]) for c in result] == [
        ("Ready", "False", "Expired"),
        ("Stalled", "True", "Expired"),
    ]


def test_a_token_valid_again_drops_stalled() -> None:
    expired = conditions.conditions_for(conditions.expired("gone"), generation=1, now=T0, current=None)
    later = T0 + timedelta(minutes=1)
    result = conditions.conditions_for(conditions.ready("valid again"), generation=2, now=later, current=expired)
    assert [(c["type"], c["status"]) for c in result] == [("Ready", "True")]
    assert result[0]["lastTransitionTime"] == "2026-01-01T00:01:00Z"


def test_transition_time_survives_while_the_status_does_not_change() -> None:
    first = conditions.conditions_for(conditions.ready("a"), generation=1, now=T0, current=None)
    later = T0 + timedelta(hours=1)
    same = conditions.conditions_for(conditions.ready("b"), generation=2, now=later, current=first)
    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    flipped = conditions.conditions_for(conditions.expired("c"), generation=2, now=later, current=first)
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T01:00:00Z"


def test_retrying_is_not_ready_and_not_stalled() -> None:
    result = conditions.conditions_for(
        conditions.retrying("DiscoveryFailed", "down"), generation=1, now=T0, current=None
    )
    assert [(c["type"], c["status"], c["reason"]) for c in result] == [("Ready", "False", "DiscoveryFailed")]


def test_details_follow_ready_and_go_when_no_longer_listed() -> None:
    kept = conditions.Detail(type="KeysPublished", status="True", reason="KeysKept", message="until T")
    first = conditions.conditions_for(
        conditions.retrying("DiscoveryFailed", "down", details=(kept,)), generation=1, now=T0, current=None
    )
    assert [(c["type"], c["status"], c["reason"]) for c in first] == [
        ("Ready", "False", "DiscoveryFailed"),
        ("KeysPublished", "True", "KeysKept"),
    ]
    later = T0 + timedelta(minutes=5)
    current = conditions.Detail(type="KeysPublished", status="True", reason="KeysCurrent", message="fresh")
    second = conditions.conditions_for(
        conditions.ready("ok", details=(current,)), generation=1, now=later, current=first
    )
    assert second[1]["lastTransitionTime"] == "2026-01-01T00:00:00Z"  # still True: no transition
    assert [
        c["type"] for c in conditions.conditions_for(conditions.ready("ok"), generation=1, now=later, current=second)
    ] == ["Ready"]
