"""The compliance report of ``bsecrets audit report``.

Three steps, each usable alone:

- :func:`load_criteria` (criteria.py) reads the criteria file (YAML; every key
  optional). Every problem is a :class:`CriteriaError` (a UsageError, exit 2)
  whose message names ``FILE:LINE``, the key and a hint.
- :func:`build_report` (aggregate.py) walks the audit events once and the
  current inventory, and returns a JSON-able dict; the verdict on each
  criterion is verdicts.py's.
- :func:`render_report` (render.py) turns that dict into markdown, JSON, CSV or HTML.

Events hold no secret value and neither does the report: names, versions,
times, actors, outcomes and reasons only. See docs/audit-report.md.

No heavy import at module level: PyYAML is imported by :func:`load_criteria` only.
"""

from bsecrets.audit.report.aggregate import (
    LIST_LIMIT,
    READ_ACTIONS,
    REPORT_VERSION,
    WRITE_ACTIONS,
    build_report,
)
from bsecrets.audit.report.criteria import (
    CRITERIA_KEYS,
    Criteria,
    CriteriaError,
    format_duration,
    load_criteria,
)
from bsecrets.audit.report.render import CSV_HEADER, FORMATS, csv_rows, render_report
from bsecrets.audit.report.verdicts import result_word

__all__ = [
    "CRITERIA_KEYS",
    "CSV_HEADER",
    "FORMATS",
    "LIST_LIMIT",
    "READ_ACTIONS",
    "REPORT_VERSION",
    "WRITE_ACTIONS",
    "Criteria",
    "CriteriaError",
    "build_report",
    "csv_rows",
    "format_duration",
    "load_criteria",
    "render_report",
    "result_word",
]
