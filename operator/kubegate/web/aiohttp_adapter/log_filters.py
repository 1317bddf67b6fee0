"""Keeps request content out of aiohttp's own log.

aiohttp logs every request it cannot parse (an oversized header, a bad request line) at ERROR with a
traceback that quotes the offending bytes, which can be someone's token. This filter turns such records
into one line that names the problem and quotes nothing.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError


class HideRequestContent(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = "refused a malformed HTTP request with %d (%s)"
            record.args = (exc.code, type(exc).__name__)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def install() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, HideRequestContent) for f in logger.filters):
        logger.addFilter(HideRequestContent())
