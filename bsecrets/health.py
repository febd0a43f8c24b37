"""ReflectiveModule: every long-lived component can say how it is doing.

``bsecrets status`` prints the indicators of the manager, of each backend and
of the local audit log; access control and rotation add theirs when they land.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from bsecrets.named_tuples import NamedTuple


class HealthIndicator(NamedTuple):
    name: str
    ok: bool
    detail: str = ""
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self._asdict())


class ReflectiveModule(ABC):
    """The 'check' half of plan-do-check-act: status, health and indicators."""

    @abstractmethod
    def get_module_status(self) -> dict[str, Any]:
        """Name, state, version and key figures; never a secret."""

    @abstractmethod
    def get_health_indicators(self) -> list[HealthIndicator]:
        """One indicator per thing that can go wrong."""

    def is_healthy(self) -> bool:
        return all(ind.ok for ind in self.get_health_indicators())
