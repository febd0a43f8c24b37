"""``bsecrets promote``: --from/--to with a mapping (plan, confirm, write), ``--resume``
and ``--abort`` of one that stopped, and ``promote log`` (services/promotion.py,
docs/promotion.md).

``promote --from ...`` is the group's hidden ``run`` command: the group puts its name
in front of what it is given unless that starts with a subcommand's name.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bsecrets.cli.context import (
    BsecretsGroupHelp,
    JsonOption,
    YesOption,
    command_group,
    obj,
)
from bsecrets.errors import NextStep, UsageError
from bsecrets.services import promotion, promotion_approval, promotion_plan


class _PromoteGroup(BsecretsGroupHelp):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return list(super().parse_args(ctx, args))


app = command_group(
    "promote",
    "Promote what a mapping names from one environment to another: plan, confirm, write.\n\n"
    "\b\n"
    "bsecrets promote --from ENV --to ENV [--map FILE | --only GLOB...] [--dry-run] [--yes]\n"
    "bsecrets promote --from ENV --to ENV --request   then   bsecrets promote approve ID\n"
    "bsecrets promote --resume ID | --abort ID\n"
    "bsecrets promote log\n\n"
    "Examples:\n"
    "  bsecrets promote --from staging --to prod --dry-run\n"
    "  bsecrets promote --from staging --to prod --yes --reason 'release 4.2'\n"
    "  bsecrets promote log",
)
app.info.cls = _PromoteGroup

_SYMBOL = {"add": "+", "change": "~", "same": "=", "skipped": "-"}


@app.command("run", hidden=True)
def run(
    ctx: typer.Context,
    source: Annotated[
        str | None, typer.Option("--from", metavar="ENV", help="The environment to promote from.")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--to", metavar="ENV", help="The environment to promote to.")
    ] = None,
    map_file: Annotated[
        Path | None,
        typer.Option("--map", metavar="FILE", help="names/rename/never instead of the profile's."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", metavar="GLOB", help="Only these names or globs (repeatable)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan and write nothing.")
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option("--resume", metavar="ID", help="Finish a promotion that stopped midway."),
    ] = None,
    abort: Annotated[
        str | None,
        typer.Option("--abort", metavar="ID", help="Undo a promotion that stopped midway."),
    ] = None,
    request: Annotated[
        bool,
        typer.Option("--request", help="Ask another admin of the target to approve it."),
    ] = False,
    yes: YesOption = False,
    json_out: JsonOption = False,
) -> None:
    """Promote from one environment to another what the profile's promote: mapping (or
    --map, or --only) names: the plan first (add, change, same, skipped; never a value),
    then every write checked against the version the plan saw, all or nothing.

    Examples:
      bsecrets promote --from staging --to prod --dry-run
      bsecrets promote --from staging --to prod --only 'db/*' --yes
    """
    cli = obj(ctx)
    manager = cli.manager
    if resume is not None or abort is not None:
        if source or target or (resume and abort):
            raise UsageError(
                "--resume and --abort take a promotion's id alone",
                step=NextStep("promotion_log"),
            )
        done = (
            promotion.resume(manager, resume) if resume else promotion.abort(manager, abort or "")
        )
        _finished(cli, done.to_public(), json_out)
        return
    if source is None or target is None:
        raise UsageError("promote needs --from ENV and --to ENV", step=NextStep("promote_mapping",
                         source=source or "staging", target=target or "prod"))  # fmt: skip
    route = promotion_plan.route_for(manager, source, target, map_file, list(only or []))
    plan = promotion_plan.make_plan(manager, source, target, route, list(only or []))
    shown = plan.to_public()
    if request and not dry_run and plan.writes:
        asked = promotion_approval.request(manager, plan, route, list(only or []))
        if cli.want_json(json_out):
            cli.emit_json({"plan": shown, "request": asked._asdict()})
            return
        _show_plan(cli, shown, False)
        cli.message(f"asked: another admin of '{target}' approves it with "
                    f"'bsecrets promote approve {asked.id}'")  # fmt: skip
        return
    if dry_run or not plan.writes:
        _show_plan(cli, shown, json_out)
        if not plan.writes and not cli.want_json(json_out):
            cli.message(f"nothing to promote: '{target}' has every value already")
        return
    _confirmed(cli, shown, yes, json_out)
    done = promotion.promote(manager, plan)
    _finished(cli, done.to_public(), json_out, plan=shown)


def _confirmed(cli: Any, shown: dict[str, Any], yes: bool, json_out: bool) -> None:
    """The plan shown and confirmed on a terminal, or --yes (shown unless --json)."""
    if yes or cli.settings.yes:
        if not cli.want_json(json_out):
            _show_plan(cli, shown, False)
        return
    confirm = cli.confirmation().ask
    if confirm is None:
        raise UsageError(
            "promote writes only with --yes when no terminal can confirm the plan",
            hint=f"check the plan with 'bsecrets promote --from {shown['from']} --to "
            f"{shown['to']} --dry-run', then add --yes",
        )
    _show_plan(cli, shown, False)
    writes = shown["counts"]["add"] + shown["counts"]["change"]
    if not confirm(f"Promote {writes} secret(s) into '{shown['to']}'? [y/N] "):
        raise UsageError("not confirmed: nothing was promoted")


@app.command("approve")
def approve(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(metavar="ID", help="From 'promote --request'.")],
    yes: YesOption = False,
    json_out: JsonOption = False,
) -> None:
    """Approve another principal's promotion request into an environment you administer:
    it is planned again and runs only if the plan is the one asked for.

    Examples:
      bsecrets promote approve 4f2a9c1b7d3e --yes --reason 'CHG-1042'
      bsecrets promote approve 4f2a9c1b7d3e
    """
    cli = obj(ctx)
    asked, plan, done = promotion_approval.approve(
        cli.manager, request_id, confirm=lambda shown: _confirmed(cli, shown, yes, json_out)
    )
    if not cli.want_json(json_out):
        cli.message(f"approved principal '{asked.by}'s request {asked.id}")
    _finished(cli, done.to_public(), json_out, plan=plan.to_public())


def _show_plan(cli: Any, shown: dict[str, Any], json_out: bool) -> None:
    if cli.want_json(json_out):
        cli.emit_json({"plan": shown})
        return
    for item in shown["items"]:
        target = item["target"]
        renamed = f" -> {target}" if target != item["source"] else ""
        why = f" ({item['why']})" if item["why"] else ""
        version = f" v{item['source_version']}" if item["source_version"] else ""
        sys.stdout.write(
            f"{_SYMBOL[item['action']]} {item['action']:<8}{item['source']}{version}"
            f"{renamed}{why}\n"
        )
    counts = shown["counts"]
    sys.stdout.write(
        f"plan {shown['id']}: {shown['from']} -> {shown['to']}: {counts['add']} to add, "
        f"{counts['change']} to change, {counts['same']} the same, {counts['skipped']} skipped\n"
    )


def _finished(
    cli: Any, done: dict[str, Any], json_out: bool, plan: dict[str, Any] | None = None
) -> None:
    if cli.want_json(json_out):
        cli.emit_json({"plan": plan, "promotion": done} if plan else {"promotion": done})
        return
    written = [i for i in done["items"] if i["written"] is not None and not i["undone"]]
    sys.stdout.write(
        f"promotion {done['id']} {done['step']}: {len(written)} secret(s) written into "
        f"'{done['target']}'\n"
    )


@app.command("log")
def log(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Past promotions from the audit log: who, when, from, to, each secret's source and
    target versions, the reason (never a value).

    Examples:
      bsecrets promote log
      bsecrets promote log --json
    """
    cli = obj(ctx)
    rows = promotion.log(cli.manager)
    if cli.want_json(json_out):
        cli.emit_json(rows)
        return
    cli.table(
        ["ID", "TIME", "BY", "FROM", "TO", "SECRETS", "OUTCOME", "REASON"],
        [
            [
                row["id"], str(row["time"]), str(row["by"]), str(row["from"]), str(row["to"]),
                ", ".join(f"{s['from_name']} v{s['from_version']} -> {s['name']} "
                          f"v{s['to_version']}" for s in row["secrets"]),
                str(row["outcome"]), row["reason"] or "",
            ]
            for row in rows
        ],
    )  # fmt: skip
