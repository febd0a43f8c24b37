"""The compliance report as text: markdown and HTML (the same sections and
tables), JSON (the report dict itself) and CSV (``section,key,metric,value``
rows; see docs/audit-report.md). Every rendering ends with a newline; markdown,
HTML and CSV cells are escaped (no markup, no cell breaks, no spreadsheet
formulas).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bsecrets.audit.report import break_glass
from bsecrets.audit.report.aggregate import ACCESS_COUNTS, ACTOR_COUNTS
from bsecrets.audit.report.verdicts import result_word, some_names
from bsecrets.errors import UsageError
from bsecrets.named_tuples import NamedTuple

FORMATS = ("markdown", "json", "csv", "html")
CSV_HEADER = ("section", "key", "metric", "value")


def render_report(report: Mapping[str, Any], fmt: str) -> str:
    """``report`` as ``fmt`` (one of FORMATS); the text ends with a newline."""
    if fmt == "json":
        import json

        return json.dumps(report, sort_keys=True, indent=2) + "\n"
    if fmt == "csv":
        return _render_csv(report)
    if fmt == "markdown":
        return _render_markdown(report)
    if fmt == "html":
        return _render_html(report)
    raise UsageError(f"unknown report format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


class _Section(NamedTuple):
    """A heading, lines of text and a table (plain text: the renderer escapes)."""

    title: str
    notes: list[str]
    columns: list[str]
    rows: list[list[str]]


def _sections(report: Mapping[str, Any]) -> list[_Section]:
    period, totals = report["period"], report["totals"]
    settings, chain = report["settings"], report["chain"]
    envs = report["environments"]
    denied, prod = report["denied"], report["production_reads"]
    never, old = report["never_read"], report["secrets_over_max_age"]
    glass = report.get("break_glass", {})
    out = [
        _Section(
            "Criteria",
            [f"Overall: {result_word(report['passed'])}"],
            ["Result", "Criterion", "Detail"],
            [
                [result_word(c["passed"]), f"{c['description']} ({c['id']})", c["detail"]]
                for c in report["criteria"]
            ],
        ),
        _Section(
            "Period and totals",
            [],
            ["Metric", "Value"],
            [
                ["Since", _text(period["since"])],
                ["Until", _text(period["until"])],
                ["First event", _text(period["first_event"])],
                ["Last event", _text(period["last_event"])],
                ["Generated at", _text(report["generated_at"])],
                ["Criteria file", _text(settings["file"]) if settings["file"] else "(defaults)"],
                ["Events", str(totals["events"])],
                ["Accesses (events without 'started')", str(totals["accesses"])],
                ["Late events", str(totals["late"])],
                *[
                    [f"Outcome {outcome}", str(n)]
                    for outcome, n in sorted(totals["by_outcome"].items())
                ],
                *[
                    [f"Action {action}", str(n)]
                    for action, n in sorted(totals["by_action"].items())
                ],
            ],
        ),
        _Section(
            "Audit chain",
            [
                "Not checked."
                if not chain["checked"]
                else (
                    f"Verifies ({_text(chain['events'])} events)."
                    if chain["ok"]
                    else "Broken: " + _problem_text(chain["problem"])
                )
            ],
            [],
            [],
        ),
        _Section(
            "Environments",
            [f"Not inventoried: {', '.join(envs['not_inventoried'])}"]
            if envs["not_inventoried"]
            else [],
            ["Environment", "Inventoried", "Current secrets", "Never read", "Over max age"],
            [
                [
                    env,
                    "yes" if env in envs["inventoried"] else "no",
                    _text(envs["inventoried"].get(env)),
                    str(len(never["by_env"].get(env, []))) if env in envs["inventoried"] else "-",
                    str(sum(1 for item in old["items"] if item["env"] == env))
                    if env in envs["inventoried"]
                    else "-",
                ]
                for env in sorted({*envs["inventoried"], *envs["not_inventoried"]})
            ],
        ),
        _Section(
            "Denied attempts",
            [_shown(denied)],
            ["Time", "Seq", "Actor", "Action", "Environment", "Secrets", "Reason"],
            [[*_event_cells(i), _text(i["reason"] or None)] for i in denied["items"]],
        ),
        _Section(
            "Production reads",
            [
                f"Production environments: {_text(prod['envs'])}. {_shown(prod)} "
                f"Secrets read: {prod['secret_reads']}."
            ],
            ["Time", "Seq", "Actor", "Action", "Environment", "Secrets"],
            [_event_cells(i) for i in prod["items"]],
        ),
        _Section(
            "Access per secret",
            [],
            ["Secret", "Reads", "Writes", "Denied", "Last read", "Readers"],
            [
                [
                    key,
                    str(s["reads"]),
                    str(s["writes"]),
                    str(s["denied"]),
                    _text(s["last_read"]),
                    f"{s['distinct_readers']}"
                    + (f" ({some_names(s['readers'], 3)})" if s["readers"] else ""),
                ]
                for key, s in sorted(report["secrets"].items())
            ],
        ),
        _Section(
            "Actors",
            [],
            [
                "Actor",
                "Events",
                "Reads",
                "Secrets read",
                "Writes",
                "Denied",
                "Failed",
                "Not found",
                "Environments",
            ],
            [
                [
                    who,
                    *(str(a[k]) for k in ACTOR_COUNTS),
                    _text(a["envs"]),
                ]
                for who, a in sorted(report["actors"].items())
            ],
        ),
        _Section(
            "Access by principal",
            ["Who opened which environment (principals: docs/access.md)."],
            ["Principal", "Environment", "Reads", "Secrets read", "Writes", "Denied", "Last"],
            [
                [who, env, *(str(a[k]) for k in ACCESS_COUNTS), _text(a["last_access"])]
                for who, envs in sorted(report.get("principals", {}).items())
                for env, a in sorted(envs.items())
            ],
        ),
        _Section(
            "Break-glass",
            [
                f"{glass.get('activated', 0)} emergency accesses activated; "
                f"{len(glass.get('unreviewed', []))} not reviewed yet "
                "(docs/break-glass.md)."
            ],
            [
                "Request",
                "Environment",
                "Requester",
                "Reason",
                "Requested",
                "Approved by",
                "Activated",
                "Mode",
                "Revoked",
                "Reviewed",
                "Reviewed by",
                "Denied",
            ],
            break_glass.rows(glass),
        ),
        _Section(
            "Secrets never read",
            [f"{never['total']} current secrets were not read in the period."],
            ["Environment", "Secret"],
            [[env, name] for env, names in sorted(never["by_env"].items()) for name in names],
        ),
        _Section(
            "Secrets older than the maximum age",
            [
                f"Maximum age: {old['max_age']}; {old['total']} secrets older."
                if old["max_age"]
                else "No maximum age set."
            ],
            ["Environment", "Secret", "Version", "Updated at", "Age (days)"],
            [
                [i["env"], i["name"], str(i["version"]), i["updated_at"], str(i["age_days"])]
                for i in old["items"]
            ],
        ),
    ]
    return out


def _event_cells(item: Mapping[str, Any]) -> list[str]:
    """Time, seq, actor, action, environment, secrets: a listed event's first columns."""
    return [
        _text(item["time"]),
        _text(item["seq"]),
        item["actor"],
        item["action"],
        _text(item["env"]),
        _text(item["names"]),
    ]


def _problem_text(problem: Mapping[str, Any] | None) -> str:
    if not problem:
        return "no detail."
    return f"event {problem.get('seq')}: {problem.get('kind')}: {problem.get('detail')}"


def _shown(part: Mapping[str, Any]) -> str:
    if part["shown"] < part["total"]:
        return f"Total: {part['total']} (the first {part['shown']} are listed)."
    return f"Total: {part['total']}."


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*[]<>|"} | {"\n": " ", "\r": " ", "\t": " "})


def _md(value: str) -> str:
    """Text safe in a markdown paragraph or table cell (no HTML, no cell breaks)."""
    return value.translate(_MD_SPECIAL)


def _render_markdown(report: Mapping[str, Any]) -> str:
    lines = ["# bsecrets audit report", ""]
    lines += [f"**Result: {result_word(report['passed'])}**", ""]
    for section in _sections(report):
        lines += [f"## {section.title}", ""]
        notes = section.notes[1:] if section.title == "Criteria" else section.notes
        for note in notes:
            lines += [_md(note), ""]
        if section.columns and section.rows:
            lines.append("| " + " | ".join(section.columns) + " |")
            lines.append("|" + "---|" * len(section.columns))
            lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in section.rows]
            lines.append("")
        elif section.columns:
            lines += ["None.", ""]
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.PASS { color: #fff; background: #2e7d32; font-weight: bold; }
.FAIL { color: #fff; background: #c62828; font-weight: bold; }
.NA { color: #fff; background: #757575; font-weight: bold; }
"""


def _render_html(report: Mapping[str, Any]) -> str:
    from html import escape

    def result_cell(word: str) -> str:
        css = {"PASS": "PASS", "FAIL": "FAIL"}.get(word, "NA")
        return f'<td class="{css}">{escape(word)}</td>'

    overall = result_word(report["passed"])
    title = f"bsecrets audit report {report['generated_at']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<h1>bsecrets audit report</h1>",
        f'<p>Result: <span class="{"NA" if overall == "N/A" else overall}">'
        f"{escape(overall)}</span></p>",
    ]
    for section in _sections(report):
        parts.append(f"<h2>{escape(section.title)}</h2>")
        notes = section.notes[1:] if section.title == "Criteria" else section.notes
        parts += [f"<p>{escape(note)}</p>" for note in notes]
        if section.columns and section.rows:
            parts.append("<table>")
            head = "".join(f"<th>{escape(c)}</th>" for c in section.columns)
            parts.append(f"<thead><tr>{head}</tr></thead>")
            parts.append("<tbody>")
            for row in section.rows:
                cells = [
                    result_cell(cell)
                    if section.title == "Criteria" and index == 0
                    else f"<td>{escape(cell)}</td>"
                    for index, cell in enumerate(row)
                ]
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody>")
            parts.append("</table>")
        elif section.columns:
            parts.append("<p>None.</p>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _csv_value(value: Any) -> str:
    """A cell: JSON-ish scalars as text; text that a spreadsheet would run as a
    formula (= + - @ tab CR first) gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = " ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    if text and text[0] in "=+-@\t\r":
        text = "'" + text
    return text


def csv_rows(report: Mapping[str, Any]) -> Iterable[tuple[str, str, str, Any]]:
    """The CSV form: (section, key, metric, value) rows (see docs/audit-report.md)."""
    yield ("summary", "", "passed", report["passed"])
    yield ("summary", "", "version", report["version"])
    yield ("summary", "", "generated_at", report["generated_at"])
    for metric, value in report["period"].items():
        yield ("period", "", metric, value)
    for metric, value in report["settings"].items():
        yield ("setting", "", metric, value)
    for c in report["criteria"]:
        yield ("criteria", c["id"], "result", result_word(c["passed"]))
        yield ("criteria", c["id"], "description", c["description"])
        yield ("criteria", c["id"], "detail", c["detail"])
    chain = report["chain"]
    yield ("chain", "", "checked", chain["checked"])
    yield ("chain", "", "ok", chain["ok"])
    yield ("chain", "", "events", chain["events"])
    problem = chain["problem"] or {}
    for metric in ("seq", "kind", "detail"):
        yield ("chain", "", f"problem_{metric}", problem.get(metric))
    totals = report["totals"]
    for metric in ("events", "accesses", "late"):
        yield ("totals", "", metric, totals[metric])
    for outcome, n in sorted(totals["by_outcome"].items()):
        yield ("outcome", outcome, "events", n)
    for action, n in sorted(totals["by_action"].items()):
        yield ("action", action, "events", n)
    envs = report["environments"]
    for env, n in sorted(envs["inventoried"].items()):
        yield ("environment", env, "inventoried", True)
        yield ("environment", env, "current_secrets", n)
    for env in envs["not_inventoried"]:
        yield ("environment", env, "inventoried", False)
    for key, s in sorted(report["secrets"].items()):
        for metric in ("reads", "writes", "denied", "last_read", "distinct_readers", "readers"):
            yield ("secret", key, metric, s[metric])
    for who, a in sorted(report["actors"].items()):
        for metric in (*ACTOR_COUNTS, "envs"):
            yield ("actor", who, metric, a[metric])
    for who, envs in sorted(report.get("principals", {}).items()):
        for env, a in sorted(envs.items()):
            for metric in (*ACCESS_COUNTS, "last_access"):
                yield ("principal", f"{who}/{env}", metric, a[metric])
    for part, section, fields in (
        ("denied", "denied", ("time", "actor", "action", "env", "names", "reason")),
        ("production_reads", "production_read", ("time", "actor", "action", "env", "names")),
    ):
        data = report[part]
        yield (section, "", "total", data["total"])
        yield (section, "", "shown", data["shown"])
        if part == "production_reads":
            yield (section, "", "secret_reads", data["secret_reads"])
        for item in data["items"]:
            for metric in fields:
                yield (section, _text(item["seq"]), metric, item[metric])
    yield from break_glass.csv_rows(report.get("break_glass", {}))
    never = report["never_read"]
    yield ("never_read", "", "total", never["total"])
    for env, names in sorted(never["by_env"].items()):
        for name in names:
            yield ("never_read", f"{env}/{name}", "never_read", True)
    old = report["secrets_over_max_age"]
    yield ("over_max_age", "", "max_age", old["max_age"])
    yield ("over_max_age", "", "total", old["total"])
    for item in old["items"]:
        key = f"{item['env']}/{item['name']}"
        for metric in ("version", "updated_at", "age_days"):
            yield ("over_max_age", key, metric, item[metric])


def _render_csv(report: Mapping[str, Any]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for section, key, metric, value in csv_rows(report):
        writer.writerow((section, _csv_value(key), metric, _csv_value(value)))
    return out.getvalue()
