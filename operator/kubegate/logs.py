"""Logging for kubegate processes: one line per record, extra fields as key=value (logfmt).

Callers never pass a secret, with one exception: the bootstrap token, logged once under `client_token`.
"""

from __future__ import annotations

import json
import logging
import sys

# Attributes every LogRecord has; anything else was passed through `extra=` and is printed as a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        # Only plain values: kopf attaches whole objects (its settings, object references) as extras.
        fields = {
            k: v
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith(("_", "k8s_")) and isinstance(v, str | int | float)
        }
        if not fields:
            return base
        rendered = " ".join(f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in sorted(fields.items()))
        return f"{base} {rendered}"


def setup(level: str) -> None:
    """Send every log record at `level` or above to standard error, once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log carries request lines; kubegate writes its own, without credentials.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
