"""Prometheus metrics in the text exposition format, kept by hand: a request costs two dict updates.

The server runs one event loop thread, so plain dicts need no locks.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Callable, Iterable

# Static-token verification takes microseconds; client and OIDC tokens milliseconds.
LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

Gauge = Callable[[], Iterable[tuple[dict[str, str], float]]]
"""Called at scrape time: the current samples (labels, value) of one gauge."""


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value


class Metrics:
    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self.verifications: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.verify_latency: defaultdict[str, Histogram] = defaultdict(lambda: Histogram(LATENCY_BUCKETS))
        self._gauges: list[tuple[str, str, Gauge]] = []

    def count_request(self, route: str, method: str, status: int) -> None:
        self.requests[(route, method, status)] += 1

    def observe_verification(self, surface: str, result: str, seconds: float) -> None:
        self.verifications[(surface, result)] += 1
        self.verify_latency[surface].observe(seconds)

    def gauge(self, name: str, help_text: str, samples: Gauge) -> None:
        self._gauges.append((name, help_text, samples))

    def render(self) -> str:
        lines: list[str] = []
        _family(lines, "kubegate_http_requests_total", "counter", "HTTP requests by route template, method and status.")
        for (route, method, status), count in sorted(self.requests.items()):
            lines.append(f"kubegate_http_requests_total{_labels(route=route, method=method, code=str(status))} {count}")
        _family(
            lines,
            "kubegate_verifications_total",
            "counter",
            "Credential verifications by surface (api, verify, tokenreview) and result (ok or why refused).",
        )
        for (surface, result), count in sorted(self.verifications.items()):
            lines.append(f"kubegate_verifications_total{_labels(surface=surface, result=result)} {count}")
        name = "kubegate_verification_duration_seconds"
        _family(lines, name, "histogram", "Time to verify one credential, by surface.")
        for surface, histogram in sorted(self.verify_latency.items()):
            cumulative = 0
            for bound, count in zip((*histogram.buckets, math.inf), histogram.counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == math.inf else repr(bound)
                lines.append(f"{name}_bucket{_labels(surface=surface, le=le)} {cumulative}")
            lines.append(f"{name}_sum{_labels(surface=surface)} {histogram.sum!r}")
            lines.append(f"{name}_count{_labels(surface=surface)} {cumulative}")
        for gauge_name, help_text, samples in self._gauges:
            _family(lines, gauge_name, "gauge", help_text)
            for labels, value in samples():
                lines.append(f"{gauge_name}{_labels(**labels)} {_number(value)}")
        return "\n".join(lines) + "\n"


def _family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))
