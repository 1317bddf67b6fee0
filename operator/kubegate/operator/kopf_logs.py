"""Keeps kopf's log readable through an API outage.

kopf logs every failed attempt of its own API calls (its watches, its patches) at ERROR. The operator
retries them every second so that it resumes at once when the API returns (`Operator.startup`), which
would be 60 ERROR lines a minute for each watch. This filter lets the first failed attempt of a run of
failures through, then at most one a minute, and says how many it held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

KOPF_CLIENT_LOGGERS = ("kopf._cogs.clients.api", "kopf._cogs.clients.watching", "kopf.objects")
_ATTEMPT = "Request attempt "
REPORT_EVERY = 60.0


class RetriesOncePerMinute(logging.Filter):
    def __init__(self, *, every: float = REPORT_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._every = every
        self._clock = clock
        self._last: float | None = None
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(_ATTEMPT):
            return True
        now = self._clock()
        if "succeeded" in message:  # the run of failures is over
            self._last, self._held = None, 0
            return True
        if self._last is not None and now - self._last < self._every:
            self._held += 1
            return False
        if self._held:
            record.msg = f"{message} ({self._held} more failed attempts not logged)"
            record.args = ()
        self._last, self._held = now, 0
        return True


def install() -> None:
    """One filter shared by kopf's client loggers, so a minute of outage costs one line, not one per watch."""
    shared = RetriesOncePerMinute()
    for name in KOPF_CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RetriesOncePerMinute) for f in logger.filters):
            logger.addFilter(shared)
