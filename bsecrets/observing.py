"""What watches the audited operation path: metrics (bsecrets/metrics) and traces.

The AuditLogger is the one place every operation passes (docs/architecture.md); an
``OperationObserver`` attached to it sees each operation begin and end and each event
written outside an operation, with the event's fields (never a value: audit/events.py).
No second instrumentation: what is observed is what is audited. An observer must not
raise; the logger ignores what one raises, the operation's result stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class OperationObserver:
    """Does nothing: subclasses override what they watch."""

    def begun(self, action: str, env: str | None, remote: bool) -> Any:
        """An operation starts; what this returns comes back to ``ended``."""
        return None

    def ended(self, handle: Any, fields: Mapping[str, Any], error: BaseException | None) -> None:
        """The operation's outcome event (``fields``) was written; ``error`` is what it
        raised, if anything."""

    def recorded(self, fields: Mapping[str, Any]) -> None:
        """An event written outside an operation (unlock, a refusal, an audit command)."""

    def verified(self, ok: bool, at: float) -> None:
        """The audit chain was verified at Unix time ``at``: passed or not."""
