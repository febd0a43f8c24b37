"""The metrics of bsecrets in one prometheus-client registry, fed by the audited
operation path (bsecrets/observing.py): the server attaches an ``OperationMetrics``
to every core it makes; ``bsecrets metrics`` replays the audit log into one
(bsecrets/metrics/replay.py). The names and labels are bsecrets/metrics/names.py's.

Labels carry the action, environment, backend kind and outcome: never a value, and a
secret's name only when the profile says ``metrics: {names: true}``.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, disable_created_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from bsecrets.errors import BackendUnavailable
from bsecrets.metrics import names as m
from bsecrets.observing import OperationObserver

# seconds: a local read is ~1-2 ms, a remote call tens of ms, a slow one seconds
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
EDGES = [*(floatToGoString(b) for b in BUCKETS), "+Inf"]  # type: ignore[no-untyped-call]
# no *_created series: a counter's start time is noise on a dashboard (and each CLI replay
# would make new ones)
disable_created_metrics()  # type: ignore[no-untyped-call]
# an outcome of a call the backend answered (a refusal from Vault is an answer)
ANSWERED = ("ok", "not_found", "denied")


def _gauge(metric: m.Metric, registry: CollectorRegistry) -> Gauge:
    return Gauge(metric.name, metric.help, metric.labels, registry=registry)


class StateGauges:
    """What the vault holds now: secrets, rotations due, break-glass sessions active."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.secrets = _gauge(m.SECRETS, registry)
        self.rotation_due = _gauge(m.ROTATION_DUE, registry)
        self.rotation_overdue = _gauge(m.ROTATION_OVERDUE, registry)
        self.break_glass_active = _gauge(m.BREAK_GLASS_ACTIVE, registry)


class OperationMetrics(OperationObserver):
    """Counters, histograms and gauges of one process (or one replay of the log).

    ``backends``: each environment's backend kind (the profile's); ``names``: a
    ``name`` label on the operations counter (``metrics: {names: true}``).

    An operation updates plain numbers under one lock (a few microseconds, with the
    caches cold after the operation's own work); the Prometheus families are built
    from them when scraped (``collect``). prometheus-client's own metric objects cost
    ~20 us an operation here: labels() checks its arguments, every child has its lock.
    """

    def __init__(self, backends: Mapping[str, str], *, names: bool = False) -> None:
        self.backends = dict(backends)
        self.names = names
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, ...], int] = {}  # (action, env, outcome[, name])
        self._calls: dict[str, list[float]] = {}  # env -> per-bucket counts, +Inf, sum
        self._up: dict[str, int] = {}
        self._last_success: dict[str, float] = {}
        # None until known: an unlabelled gauge would say 0 ("failed", and the alert
        # fires on a server that never verified)
        self._verify: tuple[int, float] | None = None
        self.audit_events: int | None = None
        self.registry = CollectorRegistry()
        self.registry.register(self)  # a Collector: it has collect()
        self._state: StateGauges | None = None

    def backend_of(self, env: str | None) -> str:
        """``env``'s backend kind; "" for an event of no environment (or of one the
        profile no longer has)."""
        return self.backends.get(env or "", "")

    # --- what an event says ---------------------------------------------------

    def count(self, fields: Mapping[str, Any]) -> None:
        """One finished event (not an intent ``started``) into the operations counter."""
        key: tuple[str, ...] = (fields["action"], fields.get("env") or "", fields["outcome"])
        if self.names:
            key += (fields.get("name") or "",)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def call(self, env: str, seconds: float) -> None:
        """One operation on ``env``'s backend took ``seconds``."""
        seconds = max(0.0, seconds)
        with self._lock:
            found = self._calls.get(env)
            if found is None:
                found = self._calls[env] = [0.0] * (len(BUCKETS) + 2)
            found[bisect_left(BUCKETS, seconds)] += 1  # the first bucket it is <= to
            found[-1] += seconds

    def contact(self, env: str, answered: bool, at: float) -> None:
        """``env``'s backend answered at Unix time ``at`` (up), or was unavailable (down)."""
        with self._lock:
            self._up[env] = 1 if answered else 0
            if answered:
                self._last_success[env] = at

    # --- OperationObserver -----------------------------------------------------

    def begun(self, action: str, env: str | None, remote: bool) -> Any:
        return time.perf_counter()

    def ended(self, handle: Any, fields: Mapping[str, Any], error: BaseException | None) -> None:
        """``count``, ``call`` and ``contact`` in one, under one lock: the path every
        request of the server takes."""
        seconds = time.perf_counter() - handle if isinstance(handle, float) else None
        env = fields.get("env") or ""
        key: tuple[str, ...] = (fields["action"], env, fields["outcome"])
        if self.names:
            key += (fields.get("name") or "",)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            if not env or seconds is None:
                return
            found = self._calls.get(env)
            if found is None:
                found = self._calls[env] = [0.0] * (len(BUCKETS) + 2)
            found[bisect_left(BUCKETS, seconds)] += 1
            found[-1] += seconds
            answered = not isinstance(error, BackendUnavailable)
            self._up[env] = 1 if answered else 0
            if answered:
                self._last_success[env] = time.time()

    def recorded(self, fields: Mapping[str, Any]) -> None:
        self.count(fields)

    def verified(self, ok: bool, at: float) -> None:
        with self._lock:
            self._verify = (1 if ok else 0, at)

    # --- what a scrape reads ----------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """The live families (prometheus-client's Collector protocol)."""
        with self._lock:
            counts, calls = dict(self._counts), {e: list(c) for e, c in self._calls.items()}
            up, last, verify = dict(self._up), dict(self._last_success), self._verify
        labels = m.OPERATIONS.labels + (("name",) if self.names else ())
        operations = CounterMetricFamily(m.OPERATIONS.name, m.OPERATIONS.help, labels=labels)
        for (action, env, outcome, *name), n in counts.items():
            operations.add_metric([str(action), env, self.backend_of(env), str(outcome), *name], n)
        yield operations
        histogram = HistogramMetricFamily(
            m.BACKEND_CALL_SECONDS.name, m.BACKEND_CALL_SECONDS.help,
            labels=m.BACKEND_CALL_SECONDS.labels,
        )  # fmt: skip
        for env, found in calls.items():
            cumulative = list(accumulate(found[:-1]))
            histogram.add_metric([env, self.backend_of(env)], list(zip(EDGES, cumulative,
                                 strict=True)), sum_value=found[-1])  # fmt: skip
        yield histogram
        for metric, values in ((m.BACKEND_UP, up), (m.BACKEND_LAST_SUCCESS, last)):
            family = GaugeMetricFamily(metric.name, metric.help, labels=metric.labels)
            for env, value in values.items():
                family.add_metric([env, self.backend_of(env)], value)
            yield family
        if self.audit_events is not None:
            yield GaugeMetricFamily(m.AUDIT_EVENTS.name, m.AUDIT_EVENTS.help, self.audit_events)
        if verify is not None:
            for metric, value in zip((m.AUDIT_VERIFY_OK, m.AUDIT_VERIFY_TIME), verify,
                                     strict=True):  # fmt: skip
                yield GaugeMetricFamily(metric.name, metric.help, value)

    def state_gauges(self) -> StateGauges:
        """The gauges only ``bsecrets metrics`` sets (they need the vault's keys)."""
        if self._state is None:
            self._state = StateGauges(self.registry)
        return self._state

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
