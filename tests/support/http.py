"""Plain HTTP calls for integration tests (urllib: no extra dependency), answering (status, JSON body)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def request(
    method: str, url: str, *, body: str | None = None, token: str | None = None, content_type: str | None = None
) -> tuple[int, Any]:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if content_type is not None:
        headers["Content-Type"] = content_type
    data = body.encode() if body is not None else None
    call = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        return 0, {"error": str(error)}  # not listening (yet): status 0
    try:
        return status, json.loads(raw) if raw else {}
    except ValueError:
        return status, {"raw": raw.decode(errors="replace")}


def get(url: str, *, token: str | None = None) -> tuple[int, Any]:
    return request("GET", url, token=token)


def post(url: str, body: str, *, token: str | None = None, content_type: str | None = None) -> tuple[int, Any]:
    """Without a content type, like `curl --data`: urllib then sends application/x-www-form-urlencoded."""
    return request("POST", url, body=body, token=token, content_type=content_type)


def delete(url: str, *, token: str | None = None) -> tuple[int, Any]:
    return request("DELETE", url, token=token)
