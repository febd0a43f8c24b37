"""The metrics of bsecrets in one prometheus-client registry, fed by the audited
operation path (bsecrets/observing.py): the server attaches an ``OperationMetrics``
to every core it makes; ``bsecrets metrics`` replays the audit log into one
(bsecrets/metrics/replay.py). The names and labels are bsecrets/metrics/names.py's.

Labels carry the action, environment, backend kind and outcome: never a value, and a
secret's name only when the profile says ``metrics: {names: true}``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from bsecrets.errors import BackendUnavailable
from bsecrets.metrics import names as m
from bsecrets.observing import OperationObserver

# seconds: a local read is ~1-2 ms, a remote call tens of ms, a slow one seconds
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# no *_created series: a counter's start time is noise on a dashboard (and each CLI replay
# would make new ones)
disable_created_metrics()  # type: ignore[no-untyped-call]
# an outcome of a call the backend answered (a refusal from Vault is an answer)
ANSWERED = ("ok", "not_found", "denied")


def _gauge(metric: m.Metric, registry: CollectorRegistry) -> Gauge:
    return Gauge(metric.name, metric.help, metric.labels, registry=registry)


class StateGauges:
    """What the vault holds now: secrets, rotations due, break-glass requests live."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.secrets = _gauge(m.SECRETS, registry)
        self.rotation_due = _gauge(m.ROTATION_DUE, registry)
        self.rotation_overdue = _gauge(m.ROTATION_OVERDUE, registry)
        self.break_glass_active = _gauge(m.BREAK_GLASS_ACTIVE, registry)


class OperationMetrics(OperationObserver):
    """Counters, histograms and gauges of one process (or one replay of the log).

    ``backends``: each environment's backend kind (the profile's); ``names``: a
    ``name`` label on the operations counter (``metrics: {names: true}``)."""

    def __init__(self, backends: Mapping[str, str], *, names: bool = False) -> None:
        self.backends = dict(backends)
        self.names = names
        self.registry = CollectorRegistry()
        labels = m.OPERATIONS.labels + (("name",) if names else ())
        self.operations = Counter(
            m.OPERATIONS.name, m.OPERATIONS.help, labels, registry=self.registry
        )
        self.calls = Histogram(
            m.BACKEND_CALL_SECONDS.name, m.BACKEND_CALL_SECONDS.help,
            m.BACKEND_CALL_SECONDS.labels, buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.up = _gauge(m.BACKEND_UP, self.registry)
        self.last_success = _gauge(m.BACKEND_LAST_SUCCESS, self.registry)
        self.audit_events = _gauge(m.AUDIT_EVENTS, self.registry)
        # made at the first verification: before it, no sample (an unlabelled gauge
        # would say 0, "failed", and fire the alert on a server that never verified)
        self._verify: tuple[Gauge, Gauge] | None = None
        self._state: StateGauges | None = None
        # label values -> the metric's child: prometheus-client's labels() checks and
        # converts its arguments at every call; a request pays a dict lookup instead
        self._counted: dict[tuple[str, ...], Any] = {}
        self._per_env: dict[tuple[Any, str], Any] = {}

    def backend_of(self, env: str | None) -> str:
        """``env``'s backend kind; "" for an event of no environment (or of one the
        profile no longer has)."""
        return self.backends.get(env or "", "")

    # --- what an event says ---------------------------------------------------

    def count(self, fields: Mapping[str, Any]) -> None:
        """One finished event (not an intent ``started``) into the operations counter."""
        env = fields.get("env") or ""
        key: tuple[str, ...] = (str(fields["action"]), env, str(fields["outcome"]))
        if self.names:
            key += (str(fields.get("name") or ""),)
        child = self._counted.get(key)
        if child is None:
            child = self.operations.labels(key[0], env, self.backend_of(env), *key[2:])
            self._counted[key] = child
        child.inc()

    def _child(self, metric: Any, env: str) -> Any:
        """``metric``'s child for ``env`` (made at its first use: a backend never
        answered has no last-success sample, not a zero)."""
        found = self._per_env.get((metric, env))
        if found is None:
            found = self._per_env[(metric, env)] = metric.labels(env, self.backend_of(env))
        return found

    def call(self, env: str, seconds: float) -> None:
        """One operation on ``env``'s backend took ``seconds``."""
        self._child(self.calls, env).observe(max(0.0, seconds))

    def contact(self, env: str, answered: bool, at: float) -> None:
        """``env``'s backend answered at Unix time ``at`` (up), or was unavailable (down)."""
        self._child(self.up, env).set(1 if answered else 0)
        if answered:
            self._child(self.last_success, env).set(at)

    # --- OperationObserver -----------------------------------------------------

    def begun(self, action: str, env: str | None, remote: bool) -> Any:
        return time.perf_counter()

    def ended(self, handle: Any, fields: Mapping[str, Any], error: BaseException | None) -> None:
        self.count(fields)
        env = fields.get("env")
        if env and isinstance(handle, float):
            self.call(env, time.perf_counter() - handle)
            self.contact(env, not isinstance(error, BackendUnavailable), time.time())

    def recorded(self, fields: Mapping[str, Any]) -> None:
        self.count(fields)

    def verified(self, ok: bool, at: float) -> None:
        if self._verify is None:
            self._verify = (_gauge(m.AUDIT_VERIFY_OK, self.registry),
                            _gauge(m.AUDIT_VERIFY_TIME, self.registry))  # fmt: skip
        self._verify[0].set(1 if ok else 0)
        self._verify[1].set(at)

    def state_gauges(self) -> StateGauges:
        """The gauges only ``bsecrets metrics`` sets (they need the vault's keys)."""
        if self._state is None:
            self._state = StateGauges(self.registry)
        return self._state

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
