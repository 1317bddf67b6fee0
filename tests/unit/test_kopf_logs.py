"""kopf's per-attempt API errors through an outage: the first, then one a minute, with a count."""

from __future__ import annotations

import logging

from kubegate.operator.kopf_logs import RetriesOncePerMinute


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf._cogs.clients.watching", logging.ERROR, __file__, 1, message, (), None)


def test_a_minute_of_retries_every_second_costs_two_lines() -> None:
    now = [0.0]
    limiter = RetriesOncePerMinute(every=60, clock=lambda: now[0])
    passed = []
    for second in range(121):
        now[0] = float(second)
        record = _record(f"Request attempt #{second + 1} failed; will retry: GET /apis -> ClientConnectorError()")
        if limiter.filter(record):
            passed.append(record.getMessage())
    assert len(passed) == 3  # at 0 s, 60 s and 120 s
    assert passed[0].startswith("Request attempt #1 failed")
    assert passed[1].endswith("(59 more failed attempts not logged)")


def test_other_kopf_messages_pass_untouched() -> None:
    limiter = RetriesOncePerMinute(every=60, clock=lambda: 0.0)
    assert limiter.filter(_record("Request attempt #1 failed; will retry: GET /x"))
    assert limiter.filter(_record("Handler 'reconcile' succeeded."))
    assert not limiter.filter(_record("Request attempt #2 failed; will retry: GET /x"))
