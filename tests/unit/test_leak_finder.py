"""The leak finder of the integration suite is not blind: values hidden as kopf and the config hide data."""

from __future__ import annotations

import base64
import gzip
import json
import uuid

from support.leaks import Secret, find_leaks


def test_the_leak_finder_finds_what_it_looks_for() -> None:
    """The scan itself must not be blind: a value hidden the ways kopf and the config hide data is found."""
    value = "kg_" + uuid.uuid4().hex
    in_base64 = base64.b64encode(json.dumps({"d": value}).encode()).decode()
    kopf_annotation = json.dumps({"data": {"keys.json": in_base64}})
    gzipped = base64.b64encode(gzip.compress(value.encode())).decode()
    secrets = [Secret("a token", value, home={"ns/own"})]
    objects = [
        {"kind": "Secret", "metadata": {"namespace": "ns", "name": "own"}, "data": {"token": in_base64}},
        {"kind": "Secret", "metadata": {"namespace": "ns", "name": "a", "annotations": {"k": kopf_annotation}}},
        {"kind": "Secret", "metadata": {"namespace": "ns", "name": "b"}, "data": {"shard": gzipped}},
        {"kind": "Event", "metadata": {"namespace": "ns", "name": "c"}, "message": f"made {value}"},
    ]
    leaks = find_leaks(secrets, objects, {"operator": f"DEBUG body: {{'data': {{'keys.json': '{in_base64}'}}}}"})
    assert leaks[:3] == ["a token in Secret ns/a", "a token in the data of Secret ns/b", "a token in Event ns/c"]
    assert leaks[3].startswith("a token in 1 line(s) of the operator log: DEBUG body")
    assert len(leaks) == 4
