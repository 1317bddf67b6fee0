"""Finds secrets where they must not be: in log lines and in objects other than their own Secret.

Values are searched in the text, and in every string that holds JSON, base64 or gzip (as Secret data, the
validation config and kopf's annotations do), decoded recursively.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


@dataclass
class Secret:
    """A secret value and the only places it may be found."""

    what: str
    value: str
    home: set[str] = field(default_factory=set)
    """`namespace/name` of the Secrets that may hold it."""
    log_lines: int = 0
    """How many log lines may hold it (the bootstrap token: exactly one)."""


def _decoded(text: str, depth: int = 0) -> Iterator[str]:
    """`text`, and what it holds when read as JSON, base64 or gzip, recursively (a few levels)."""
    yield text
    if depth > 4:
        return
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict | list):
        yield from _strings(parsed, depth + 1)
    for run in _BASE64_RUN.findall(text):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decode(run + "=" * (-len(run) % 4))
            except (binascii.Error, ValueError):
                continue
            if raw[:2] == b"\x1f\x8b":
                try:
                    raw = gzip.decompress(raw)
                except (OSError, EOFError):
                    continue
            decoded = raw.decode("utf-8", errors="ignore")
            if decoded and decoded != text:
                yield from _decoded(decoded, depth + 1)


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    if isinstance(value, str):
        yield from _decoded(value, depth)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item, depth)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, depth)


def _where(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}"


def find_leaks(secrets: list[Secret], objects: list[dict[str, Any]], logs: dict[str, str]) -> list[str]:
    leaks: list[str] = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        home = f"{meta.get('namespace', '')}/{meta.get('name')}"
        # A Secret's data and stringData are its home; everything else of every object (its annotations,
        # labels, status, spec, a ConfigMap's data, an Event's message) must hold no secret.
        exposed = dict(obj)
        if obj.get("kind") == "Secret":
            held = "\n".join(_strings({k: obj.get(k) for k in ("data", "stringData")}))
            for secret in secrets:
                if secret.value in held and home not in secret.home:
                    leaks.append(f"{secret.what} in the data of {_where(obj)}")
            exposed = {k: v for k, v in obj.items() if k not in ("data", "stringData")}
        text = "\n".join(_strings(exposed))
        leaks += [f"{s.what} in {_where(obj)}" for s in secrets if s.value in text]
    for name, log in logs.items():
        lines = [(line, "\n".join(_decoded(line))) for line in log.splitlines()]
        for secret in secrets:
            found = [line for line, forms in lines if secret.value in forms]
            if len(found) > secret.log_lines:
                leaks.append(f"{secret.what} in {len(found)} line(s) of the {name} log: {found[0][:160]}...")
    return leaks
