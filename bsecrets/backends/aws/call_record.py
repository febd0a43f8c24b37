"""What one AWS call did, as the attempt hooks (attempts.py) saw it, and the
exception they raise into botocore when the time budget is spent.

The error table (errors.py) reads both to word a failure: how many attempts were
made, whether the budget stopped them, whether a write may have been applied.
"""

from __future__ import annotations

from dataclasses import dataclass


class BudgetSpent(Exception):
    """Raised inside botocore (before-send) when the budget has no time for an attempt."""


@dataclass
class CallRecord:
    operation: str = ""
    attempts: int = 0  # requests that left
    may_have_arrived: bool = False  # an attempt may have reached AWS and been applied
    out_of_time: bool = False  # the budget stopped a retry

    def applied(self) -> str:
        """For a failed write: "unknown" if an attempt may have been applied, else "no"."""
        return "unknown" if self.may_have_arrived else "no"
