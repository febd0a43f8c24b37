"""The metrics bsecrets exposes: one table, read by the registry, the docs' list
(docs/observability.md), the Grafana dashboard's and the alert rules' tests.

Labels never carry a value; they carry a secret's name only where the profile says
``metrics: {names: true}``. Imports nothing: safe to read anywhere.
"""

from __future__ import annotations

from bsecrets.named_tuples import NamedTuple


class Metric(NamedTuple):
    name: str  # without the _total/_bucket suffixes Prometheus adds
    kind: str  # counter, histogram, gauge
    labels: tuple[str, ...]
    help: str
    where: str  # "both": /metrics and `bsecrets metrics`; "cli": only `bsecrets metrics`


OPERATIONS = Metric(
    "bsecrets_operations", "counter", ("action", "env", "backend", "outcome"),
    "Audited operations by action, environment, backend and outcome (ok, denied, "
    "not_found, failed)", "both",
)  # fmt: skip
BACKEND_CALL_SECONDS = Metric(
    "bsecrets_backend_call_seconds", "histogram", ("env", "backend"),
    "Time of each operation on an environment's backend (remote: from the intent event "
    "to the outcome)", "both",
)  # fmt: skip
BACKEND_UP = Metric(
    "bsecrets_backend_up", "gauge", ("env", "backend"),
    "1 if the backend answered at its last contact, 0 if it was unavailable", "both",
)  # fmt: skip
BACKEND_LAST_SUCCESS = Metric(
    "bsecrets_backend_last_success_timestamp_seconds", "gauge", ("env", "backend"),
    "Unix time of the last call the backend answered", "both",
)  # fmt: skip
SECRETS = Metric(
    "bsecrets_secrets", "gauge", ("env", "backend"),
    "Secrets in the environment (current, not deleted)", "cli",
)  # fmt: skip
ROTATION_DUE = Metric(
    "bsecrets_rotation_due", "gauge", ("env",),
    "Secrets whose rotation policy's max_age ends within 7 days (not yet overdue)", "cli",
)  # fmt: skip
ROTATION_OVERDUE = Metric(
    "bsecrets_rotation_overdue", "gauge", ("env",),
    "Secrets whose rotation policy's max_age has passed", "cli",
)  # fmt: skip
BREAK_GLASS_ACTIVE = Metric(
    "bsecrets_break_glass_active", "gauge", ("env",),
    "Break-glass sessions active now (activated, not revoked, not expired)", "cli",
)  # fmt: skip
AUDIT_EVENTS = Metric(
    "bsecrets_audit_events", "gauge", (),
    "Events in the local vault's audit chain", "both",
)  # fmt: skip
AUDIT_VERIFY_OK = Metric(
    "bsecrets_audit_verify_ok", "gauge", (),
    "1 if the last audit chain verification passed, 0 if it found a problem", "both",
)  # fmt: skip
AUDIT_VERIFY_TIME = Metric(
    "bsecrets_audit_verify_timestamp_seconds", "gauge", (),
    "Unix time of the last audit chain verification", "both",
)  # fmt: skip

ALL: tuple[Metric, ...] = (
    OPERATIONS, BACKEND_CALL_SECONDS, BACKEND_UP, BACKEND_LAST_SUCCESS, SECRETS,
    ROTATION_DUE, ROTATION_OVERDUE, BREAK_GLASS_ACTIVE, AUDIT_EVENTS, AUDIT_VERIFY_OK,
    AUDIT_VERIFY_TIME,
)  # fmt: skip


def exposed_series() -> set[str]:
    """Every series name a scrape can show (``_total``, ``_bucket``, ``_sum``, ``_count``)."""
    out: set[str] = set()
    for metric in ALL:
        if metric.kind == "counter":
            out.add(metric.name + "_total")
        elif metric.kind == "histogram":
            out |= {metric.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            out.add(metric.name)
    return out
