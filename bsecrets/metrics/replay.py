"""The audit log, replayed into the metrics (``bsecrets metrics``): a host where
bsecrets runs only as short CLI commands keeps no counters in memory; its audit log
is the record of every operation, so the counters are counted from it.

Each finished event counts once; a remote operation's time is from its intent event
(``started``) to its outcome, matched by request id, action, environment and name.
A local operation writes one event: its time is not in the log (the server's live
metrics have it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bsecrets.metrics.registry import ANSWERED, OperationMetrics
from bsecrets.timeutil import parse_iso


def replay(metrics: OperationMetrics, events: Iterable[Mapping[str, Any]]) -> int:
    """Feed ``events`` (oldest first) to ``metrics``; the number of events read."""
    started: dict[tuple[Any, ...], float] = {}
    read = 0
    for event in events:
        read += 1
        env = event.get("env")
        key = (event.get("request_id"), event.get("action"), env, event.get("name"))
        at = parse_iso(str(event["time"])).timestamp()
        if event.get("outcome") == "started":
            started[key] = at
            continue
        metrics.count(event)
        begun = started.pop(key, None)
        if begun is None or not env:
            continue
        metrics.call(env, at - begun)
        if event.get("outcome") in ANSWERED:
            metrics.contact(env, True, at)
    return read
