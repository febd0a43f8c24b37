"""``bsecrets audit ...``: read, verify, report on, export and archive the audit log
(docs/audit.md). Thin commands over services/audit_ops.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bsecrets.audit.chain import Anchor
from bsecrets.audit.events import Action, Outcome
from bsecrets.audit.query import EventFilter, actor_label, event_names, parse_when
from bsecrets.audit.report import FORMATS, render_report
from bsecrets.cli.context import CliContext, JsonOption, command_group, obj, whole_number
from bsecrets.cli.exit_codes import exit_code_of
from bsecrets.errors import UsageError
from bsecrets.files import write_private_file
from bsecrets.services import audit_ops

app = command_group(
    "audit",
    "The tamper-evident audit log: read, verify, report, export, archive.\n\n"
    "Examples:\n"
    "  bsecrets audit log --since 7d\n"
    "  bsecrets audit verify\n"
    "  bsecrets audit report --since 90d -o report.md",
)

Since = Annotated[
    str | None,
    typer.Option("--since", help="From this time: 2026-11-01, 2026-11-01T09:30:00Z or 7d (ago)."),
]
Until = Annotated[str | None, typer.Option("--until", help="Before this time (same forms).")]
EnvFilter = Annotated[str | None, typer.Option("--env", "-e", help="Only this environment.")]
NameFilter = Annotated[
    str | None, typer.Option("--name", help="Only this secret name (a glob: 'db/*').")
]
ActionFilter = Annotated[
    str | None, typer.Option("--action", help="Only this action (a glob: get, put, 'audit.*').")
]
ActorFilter = Annotated[
    str | None, typer.Option("--actor", help="Only actors whose user@host contains this.")
]
OutcomeFilter = Annotated[
    str | None,
    typer.Option("--outcome", help=f"Only this outcome: {', '.join(Outcome)}."),
]
Limit = Annotated[
    int | None,
    typer.Option("--limit", "-n", parser=whole_number(1), metavar="N", help="The newest N events."),
]
MAX_INTERVAL_S = 3600.0


def _check_interval(value: float) -> float:
    """--interval: a finite number of seconds from 0.1 to an hour (a float option also
    takes inf and nan, which time.sleep refuses)."""
    import math

    if not (math.isfinite(value) and 0.1 <= value <= MAX_INTERVAL_S):
        raise typer.BadParameter(f"{value} is not from 0.1 to {MAX_INTERVAL_S:.0f} seconds")
    return value


def _filter(
    cli: CliContext,
    since: str | None,
    until: str | None,
    env: str | None = None,
    name: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    outcome: str | None = None,
    text: str | None = None,
    *,
    every_env: bool = False,
) -> EventFilter:
    if not every_env:  # 'bsecrets -e prod audit log' is 'audit log -e prod' (not BSECRETS_ENV)
        env = env or cli.settings.env_flag
    return audit_ops.event_filter(cli.manager, since, until, env, name, action, actor,
                                  outcome, text)  # fmt: skip


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _row(event: dict[str, Any]) -> list[str]:
    names = event_names(event)
    shown = ", ".join(names[:3]) + (f" (+{len(names) - 3})" if len(names) > 3 else "")
    version = event.get("version")
    return [
        _cell(event.get("seq")),
        _cell(event.get("time")),
        actor_label(event),
        _cell(event.get("action")),
        _cell(event.get("env")),
        shown,
        f"v{version}" if version is not None else "",
        _cell(event.get("outcome")) + (" (late)" if event.get("late") else ""),
        _cell(event.get("reason")),
    ]


_HEADERS = ["SEQ", "TIME", "ACTOR", "ACTION", "ENV", "NAME", "VERSION", "OUTCOME", "REASON"]


def _show(cli: CliContext, events: list[dict[str, Any]], json_out: bool) -> None:
    if cli.want_json(json_out):
        cli.emit_json(events)
        return
    if not events:
        cli.message("no events")
        return
    if cli.settings.quiet or not sys.stdout.isatty():
        cli.table(_HEADERS, [_row(e) for e in events])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*_HEADERS, box=None, header_style="bold")
    for event in events:
        table.add_row(*_row(event), style="red" if event.get("outcome") == Outcome.DENIED else None)
    Console(no_color=not cli.settings.color).print(table)


@app.command("log")
def log(
    ctx: typer.Context,
    since: Since = None,
    until: Until = None,
    env: EnvFilter = None,
    name: NameFilter = None,
    action: ActionFilter = None,
    actor: ActorFilter = None,
    outcome: OutcomeFilter = None,
    limit: Limit = None,
    json_out: JsonOption = False,
) -> None:
    """Show events, newest last.

    Examples:
      bsecrets audit log --since 7d -e prod
      bsecrets audit log --action get --name 'db/*' --json
      bsecrets audit log -n 20 --outcome denied
    """
    cli = obj(ctx)
    where = _filter(cli, since, until, env, name, action, actor, outcome)
    _show(cli, audit_ops.query(cli.manager, where, limit), json_out)


@app.command("search")
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="Text to find in any field (not case-sensitive).")],
    since: Since = None,
    until: Until = None,
    env: EnvFilter = None,
    name: NameFilter = None,
    action: ActionFilter = None,
    actor: ActorFilter = None,
    outcome: OutcomeFilter = None,
    limit: Limit = None,
    json_out: JsonOption = False,
) -> None:
    """Events whose fields contain QUERY (names, actors, reasons, CI run ids...).

    Examples:
      bsecrets audit search ci-run-1234
      bsecrets audit search alice --since 2026-11-01 --outcome denied
    """
    cli = obj(ctx)
    if not query.strip():
        raise UsageError("empty search text", hint="give some text, or use 'bsecrets audit log'")
    where = _filter(cli, since, until, env, name, action, actor, outcome, query.strip())
    _show(cli, audit_ops.query(cli.manager, where, limit, Action.AUDIT_SEARCH), json_out)


@app.command("tail")
def tail(
    ctx: typer.Context,
    lines: Annotated[
        int,
        typer.Option(
            "--lines", "-n", parser=whole_number(0), metavar="N", help="Events shown first."
        ),
    ] = 10,
    interval: Annotated[
        float,
        typer.Option(
            "--interval", callback=_check_interval, help="Seconds between checks (0.1 to 3600)."
        ),
    ] = 1.0,
    env: EnvFilter = None,
    name: NameFilter = None,
    action: ActionFilter = None,
    actor: ActorFilter = None,
    outcome: OutcomeFilter = None,
    json_out: JsonOption = False,
) -> None:
    """Show the last events, then follow new ones (Ctrl-C stops).

    Examples:
      bsecrets audit tail
      bsecrets audit tail -n 50 -e prod --json
    """
    cli = obj(ctx)
    where = _filter(cli, None, None, env, name, action, actor, outcome)
    as_json = cli.want_json(json_out)
    try:
        for event in audit_ops.follow(cli.manager, where, lines, interval):
            if as_json:
                sys.stdout.write(json.dumps(event, sort_keys=True) + "\n")
            else:
                sys.stdout.write("  ".join(c for c in _row(event) if c) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return


@app.command("verify")
def verify(
    ctx: typer.Context,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor", help="The head an external witness kept (SEQ:HEX from 'audit anchor')."
        ),
    ] = None,
    skip_archives: Annotated[
        bool, typer.Option("--skip-archives", help="Check the live log only.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Check the chain, the archives and the anchor: exit 0 if intact, 5 if not.

    Examples:
      bsecrets audit verify
      bsecrets audit verify --anchor "$(cat audit-anchor.txt)"
      bsecrets audit verify --skip-archives --json
    """
    cli = obj(ctx)
    given = Anchor.parse(anchor) if anchor is not None else None
    result = audit_ops.verify(cli.manager, given, archives=not skip_archives)
    if cli.want_json(json_out):
        cli.emit_json(result.to_dict())
        if result.problem is not None:
            raise typer.Exit(int(exit_code_of(audit_ops.AuditIntegrityError)))
        return
    if (found := audit_ops.problem_error(result)) is not None:
        raise found
    out = sys.stdout.write
    span = f"{result.first_seq}-{result.last_seq}" if result.events else "none"
    out(f"ok: {result.events} events ({span}), chain intact\n")
    if result.archived:
        out(f"archives: {result.archived} events, intact and joined to the live log\n")
    out(f"head: {result.head}\n")
    out(f"anchor: {result.anchor}\n")
    out("pages: not checked here; 'bsecrets verify' checks the whole vault file\n")


@app.command("anchor")
def anchor(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Print the chain head for an external witness (and keep it in the OS keyring).

    Examples:
      bsecrets audit anchor > audit-anchor.txt
      bsecrets audit anchor --json
    """
    cli = obj(ctx)
    head, kept = audit_ops.anchor(cli.manager)
    if cli.want_json(json_out):
        cli.emit_json({"anchor": str(head), "seq": head.seq, "keyring": kept})
        return
    sys.stdout.write(f"{head}\n")
    where = "kept in the OS keyring" if kept else "no OS keyring: keep it somewhere safe"
    cli.message(f"audit head at event {head.seq} ({where}); check with 'audit verify --anchor'")


@app.command("export")
def export(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl (one event per line).")] = (
        "jsonl"
    ),
    output: Annotated[
        str, typer.Option("--output", "-o", help="Write here (mode 0600); '-': stdout.")
    ] = "-",
    since: Since = None,
    until: Until = None,
    env: EnvFilter = None,
    name: NameFilter = None,
    action: ActionFilter = None,
    actor: ActorFilter = None,
    outcome: OutcomeFilter = None,
) -> None:
    """Events as JSON Lines for a SIEM, with their chain fields (seq, prev_mac, mac).

    Examples:
      bsecrets audit export -o audit.jsonl --since 30d
      bsecrets audit export -e prod --action put
    """
    cli = obj(ctx)
    if fmt != "jsonl":
        raise UsageError(f"unknown export format {fmt!r}", hint="the one format is jsonl")
    where = _filter(cli, since, until, env, name, action, actor, outcome)
    if output == "-":
        count = audit_ops.export_jsonl(cli.manager, where, sys.stdout.write)
        sys.stdout.flush()
    else:
        chunks: list[str] = []
        count = audit_ops.export_jsonl(cli.manager, where, chunks.append)
        write_private_file(Path(output), "".join(chunks).encode())
    cli.message(f"exported {count} events")


@app.command("report")
def report(
    ctx: typer.Context,
    since: Since = None,
    until: Until = None,
    criteria: Annotated[
        str | None,
        typer.Option("--criteria", help="A YAML file of criteria (docs/audit-report.md)."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="markdown, json, csv or html.")
    ] = "markdown",
    output: Annotated[
        str, typer.Option("--output", "-o", help="Write here (mode 0600); '-': stdout.")
    ] = "-",
) -> None:
    """A compliance report: access per secret and actor, denied attempts, production
    reads, unused and old secrets, and pass/fail per criterion. Exit 0 even if a
    criterion fails (the report says so); see the JSON 'passed' field.

    Examples:
      bsecrets audit report --since 90d -o report.md
      bsecrets audit report --format json --criteria criteria.yaml
    """
    cli = obj(ctx)
    if fmt not in FORMATS:
        raise UsageError(f"unknown report format {fmt!r}", hint=f"one of: {', '.join(FORMATS)}")
    where = _filter(cli, since, until, every_env=True)
    result = audit_ops.report(
        cli.manager, where, Path(criteria) if criteria else None, cli.manager.clock()
    )
    text = render_report(result, fmt)
    if output == "-":
        sys.stdout.write(text)
        return

    write_private_file(Path(output), text.encode())
    cli.message(f"wrote {output}")


@app.command("archive")
def archive(
    ctx: typer.Context,
    before: Annotated[
        str | None, typer.Option("--before", help="Archive events before this time.")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="The archive file to create (never overwritten).")
    ] = None,
    apply_retention: Annotated[
        bool,
        typer.Option(
            "--apply-retention", help="Archive what is older than the profile's audit retention."
        ),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Move old events into a chained, MAC-protected archive file; 'verify' still
    proves the log continuous.

    Examples:
      bsecrets audit archive --before 2026-01-01 --to audit-2025.jsonl
      bsecrets audit archive --apply-retention --json
    """
    cli = obj(ctx)
    manager = cli.manager
    now = manager.clock()
    if apply_retention == (before is not None):
        raise UsageError(
            "give --before DATE or --apply-retention (one of them)",
            hint="bsecrets audit archive --before 2026-01-01 --to FILE",
        )
    cutoff = (
        audit_ops.retention_cutoff(manager, now)
        if apply_retention
        else parse_when(str(before), "--before", now)
    )
    if to is None:
        if not apply_retention:
            raise UsageError("--to FILE is missing", hint="name the archive file to create")
        stamp = cutoff.strftime("%Y%m%dT%H%M%SZ")
        target = Path(manager.profile.vault_file).parent / "audit" / f"archive-before-{stamp}.jsonl"
    else:
        target = Path(to)
    result = audit_ops.archive(manager, cutoff, target)
    if cli.want_json(json_out):
        cli.emit_json(result)
        return
    if not result["archived"]:
        cli.message("no events to archive")
        return
    cli.message(
        f"archived events {result['first_seq']}-{result['last_seq']} "
        f"({result['archived']}) to {result['path']}"
    )
