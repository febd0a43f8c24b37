"""status: what the profile names and how each part is doing (docs/cli.md, Status).

The JSON document has fixed keys (services/status_report.py); the text is made for
people: a table on a terminal, aligned lines otherwise (scripts use --json).
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from bsecrets.cli.context import CliContext, JsonOption, obj
from bsecrets.services.status_report import status_document


def status(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Profile, vault, environments and health indicators; exit 0 even when one fails
    (see "healthy").

    Examples:
      bsecrets status
      bsecrets status --json | jq -e .healthy
      bsecrets -p ~/app/bsecrets.yaml status -q
    """
    cli = obj(ctx)
    manager = cli.manager
    document = status_document(manager)
    if cli.want_json(json_out):
        cli.emit_json(document)
    elif sys.stdout.isatty() and not cli.settings.quiet:
        _print_tables(cli, document)
    else:
        _print_text(document)


def _figure(key: str, value: Any) -> str | None:
    """One backend figure in words: ``generation 3``, ``initialized yes``, ``last
    latency 12 ms``; None for a value not known (nothing to show)."""
    if value is None:
        return None
    if isinstance(value, bool):
        value = "yes" if value else "no"
    if key.endswith("_ms"):
        return f"{key[:-3].replace('_', ' ')} {value} ms"
    return f"{key.replace('_', ' ')} {value}"


def _details(figures: dict[str, Any]) -> str:
    if "error" in figures:
        return f"error: {figures['error']}"
    shown = (_figure(k, v) for k, v in figures.items() if k not in ("backend", "vault_file"))
    return ", ".join(f for f in shown if f)


def _overview(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("profile", document["profile"]),
        ("vault file", document["vault_file"]),
        ("default env", document["default_env"]),
        ("audit log", document["audit"]["sink"]),
        ("healthy", "yes" if document["healthy"] else "no"),
    ]


def _print_text(document: dict[str, Any]) -> None:
    out = sys.stdout.write
    for label, value in _overview(document):
        out(f"{label:<12} {value}\n")
    out("\nenvironments\n")
    for name, figures in document["environments"].items():
        out(f"  {name:<12} {figures['backend']:<6} {_details(figures)}".rstrip() + "\n")
    out("\nindicators\n")
    for ind in document["indicators"]:
        state = "ok  " if ind["ok"] else "FAIL"
        out(f"  {state} {ind['name']:<14} {ind['detail']}".rstrip() + "\n")


def _print_tables(cli: CliContext, document: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text  # names and details are text, never rich markup

    console = Console(no_color=not cli.settings.color, highlight=False)

    def table(*headers: str) -> Table:  # long paths and details wrap, never cut
        grid = Table(box=None, header_style="bold", show_header=any(headers))
        for header in headers:
            grid.add_column(header, overflow="fold")
        return grid

    overview = table("", "")
    for label, value in _overview(document):
        overview.add_row(Text(label, style="bold"), Text(value))
    environments = table("ENVIRONMENT", "BACKEND", "DETAILS")
    for name, figures in document["environments"].items():
        style = "red" if "error" in figures else ""
        environments.add_row(
            Text(name), Text(figures["backend"]), Text(_details(figures), style=style)
        )
    indicators = table("", "INDICATOR", "DETAIL")
    for ind in document["indicators"]:
        state = Text("ok", style="green") if ind["ok"] else Text("FAIL", style="bold red")
        indicators.add_row(state, Text(ind["name"]), Text(ind["detail"]))
    for grid in (overview, environments, indicators):
        console.print(grid)
        console.print()
