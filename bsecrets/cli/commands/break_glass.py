"""``bsecrets break-glass``: setup, request, approve, activate, revoke, review, rekey,
status (services/break_glass.py, services/break_glass_setup.py, docs/break-glass.md)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from bsecrets.cli.context import EnvOption, JsonOption, command_group, obj
from bsecrets.errors import UsageError
from bsecrets.services import break_glass, break_glass_setup
from bsecrets.timeutil import parse_duration

app = command_group(
    "break-glass",
    "Emergency access to a local environment: M of N custodians approve, it expires, it is "
    "reviewed.\n\n"
    "\b\n"
    "setup -e ENV --custodians a,b,c --threshold 2     (an admin, once)\n"
    "request -e ENV --reason TEXT --ttl 1h [--write]  (the one who needs in)\n"
    "approve ID                                        (each custodian, with a code)\n"
    "activate ID                                       (the requester: a session)\n"
    "revoke ID | review ID --notes TEXT | rekey -e ENV | status\n\n"
    "Examples:\n"
    "  bsecrets break-glass request -e prod --reason 'INC-7 db down' --ttl 1h\n"
    "  bsecrets break-glass status",
)

RequestId = Annotated[str, typer.Argument(metavar="ID", help="From 'break-glass request'.")]


def _print_words(cli: Any, custodians: list[str], words: list[str]) -> None:
    """Offline shares: each printed once, for its custodian to keep on paper."""
    cli.warn("offline shares: each is printed now and never again; hand each to its custodian")
    for custodian, share in zip(custodians, words, strict=True):
        sys.stdout.write(f"{custodian}: {share}\n")


@app.command("setup")
def setup(
    ctx: typer.Context,
    custodians: Annotated[
        str, typer.Option("--custodians", metavar="A,B,C", help="Principals who hold shares.")
    ],
    threshold: Annotated[
        int, typer.Option("--threshold", metavar="M", help="Shares needed (2 to custodians).")
    ],
    env: EnvOption = None,
    offline_shares: Annotated[
        bool, typer.Option("--offline-shares", help="Print each share once, as words.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Set up an environment's emergency key: split M-of-N among custodians (each share
    sealed to its custodian's key, or printed once as words with --offline-shares).

    Examples:
      bsecrets break-glass setup -e prod --custodians alice,bob,carol --threshold 2
      bsecrets break-glass setup -e prod --custodians alice,bob,carol --threshold 2 --offline-shares
    """
    cli = obj(ctx)
    names = custodians.split(",")
    made, words = break_glass_setup.setup(cli.manager, cli.env(env), names, threshold,
                                          offline=offline_shares)  # fmt: skip
    if words:
        _print_words(cli, made.custodians, words)
    if cli.want_json(json_out):
        cli.emit_json({"env": made.env, "generation": made.generation,
                       "custodians": made.custodians, "threshold": made.threshold})  # fmt: skip
        return
    cli.message(f"break-glass for '{made.env}': {made.threshold} of "
                f"{', '.join(made.custodians)} (generation {made.generation})")  # fmt: skip


@app.command("request")
def request(
    ctx: typer.Context,
    ttl: Annotated[str, typer.Option("--ttl", help="How long the access lasts (1m to 24h).")],
    env: EnvOption = None,
    write: Annotated[bool, typer.Option("--write", help="Ask for write access too.")] = False,
    override: Annotated[
        bool,
        typer.Option("--override", help="An admin: request while an earlier one is unreviewed."),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Ask for emergency access to an environment, with --reason (the incident, for
    everyone): custodians approve, then you activate.

    Examples:
      bsecrets break-glass request -e prod --reason 'INC-7 payments down' --ttl 1h
      bsecrets break-glass request -e prod --reason 'INC-8 rotate a leaked key' --ttl 30m --write
    """
    cli = obj(ctx)
    if not cli.settings.reason:
        raise UsageError(
            "a break-glass request needs --reason (the incident)",
            hint="bsecrets break-glass request -e prod --reason 'INC-7 db down' --ttl 1h",
        )
    made = break_glass.request(cli.manager, cli.env(env), cli.settings.reason,
                               parse_duration(ttl), write=write, override=override)  # fmt: skip
    if cli.want_json(json_out):
        cli.emit_json({**made._asdict(), "expires_at": made.expires_at})
        return
    sys.stdout.write(f"{made.id}\n")
    cli.message(f"requested: custodians approve with 'bsecrets break-glass approve {made.id}'; "
                f"it expires at {made.expires_at}")  # fmt: skip


@app.command("approve")
def approve(
    ctx: typer.Context,
    request_id: RequestId,
    offline_share: Annotated[
        bool, typer.Option("--offline-share", help="Read your share's words from stdin.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Approve a break-glass request as one of its custodians (your one-time code in
    BSECRETS_OTP, or asked on a terminal).

    Examples:
      bsecrets --as bob break-glass approve 4f2a9c1b7d3e
      bsecrets break-glass approve 4f2a9c1b7d3e --offline-share < share.txt
    """
    cli = obj(ctx)
    words = None
    if offline_share:
        if sys.stdin.isatty():
            raise UsageError(
                "--offline-share reads the share's words from stdin",
                hint="bsecrets break-glass approve ID --offline-share < share.txt",
            )
        words = sys.stdin.read(4096)
    count, threshold = break_glass.approve(cli.manager, request_id, words)
    if cli.want_json(json_out):
        cli.emit_json({"id": request_id, "approvals": count, "threshold": threshold})
        return
    cli.message(f"approved: {count} of {threshold}")


@app.command("activate")
def activate(ctx: typer.Context, request_id: RequestId, json_out: JsonOption = False) -> None:
    """Activate an approved request: a session for the environment until the request's
    TTL (read only unless it asked for --write). Prints the export line to eval.

    Examples:
      bsecrets --as dana break-glass activate 4f2a9c1b7d3e
      bsecrets --as dana break-glass activate 4f2a9c1b7d3e --json
    """
    cli = obj(ctx)
    found, session = break_glass.activate(cli.manager, request_id)
    if cli.want_json(json_out):
        cli.emit_json({"id": found.id, "env": found.env, "session": session.token,
                       "expires_at": found.expires_at, "write": found.write})  # fmt: skip
        return
    sys.stdout.write(f"export BSECRETS_SESSION={session.token}\n")
    mode = "read and write" if found.write else "read only"
    cli.message(f"break-glass session for '{found.env}' ({mode}) until {found.expires_at}")


@app.command("revoke")
def revoke(ctx: typer.Context, request_id: RequestId, json_out: JsonOption = False) -> None:
    """End a request and its session now (its requester, or an admin of the environment).

    Examples:
      bsecrets break-glass revoke 4f2a9c1b7d3e
      bsecrets --as dana break-glass revoke 4f2a9c1b7d3e --json
    """
    cli = obj(ctx)
    done = break_glass.revoke(cli.manager, request_id)
    if cli.want_json(json_out):
        cli.emit_json(done._asdict())
        return
    cli.message(f"break-glass request {done.id} revoked")


@app.command("review")
def review(
    ctx: typer.Context,
    request_id: RequestId,
    notes: Annotated[str, typer.Option("--notes", help="What happened, what was done.")],
    json_out: JsonOption = False,
) -> None:
    """Record the post-incident review of a request (an admin other than its requester);
    the environment's next request waits for it.

    Examples:
      bsecrets break-glass review 4f2a9c1b7d3e --notes 'INC-7: restarted the db; no data read'
      bsecrets --as erin break-glass review 4f2a9c1b7d3e --notes 'see postmortem PM-12'
    """
    cli = obj(ctx)
    done = break_glass.review(cli.manager, request_id, notes)
    if cli.want_json(json_out):
        cli.emit_json(done._asdict())
        return
    cli.message(f"break-glass request {done.id} reviewed")


@app.command("rekey")
def rekey(ctx: typer.Context, env: EnvOption = None, json_out: JsonOption = False) -> None:
    """After an activation: re-key the environment and split a new emergency key among the
    same custodians, so the shares used are worthless.

    Examples:
      bsecrets break-glass rekey -e prod
      bsecrets break-glass rekey -e prod --json
    """
    cli = obj(ctx)
    made, count, words = break_glass_setup.rekey(cli.manager, cli.env(env))
    if words:
        _print_words(cli, made.custodians, words)
    if cli.want_json(json_out):
        cli.emit_json({"env": made.env, "generation": made.generation, "reencrypted": count})
        return
    cli.message(f"'{made.env}' re-keyed ({count} secrets) and its emergency key split anew "
                f"(generation {made.generation})")  # fmt: skip


@app.command("status")
def status(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Setups, open requests, approvals so far, active sessions and their expiry, reviews
    pending, and environments to re-key after a use.

    Examples:
      bsecrets break-glass status
      bsecrets break-glass status --json
    """
    cli = obj(ctx)
    found = break_glass.status(cli.manager)
    if cli.want_json(json_out):
        cli.emit_json(found)
        return
    for s in found["setups"]:
        sys.stdout.write(f"{s['env']}: {s['threshold']} of {', '.join(s['custodians'])} "
                         f"(generation {s['generation']})\n")  # fmt: skip
        if s["rekey_needed"]:
            cli.warn(f"'{s['env']}' break-glass was used: run 'bsecrets break-glass rekey "
                     f"-e {s['env']}'")  # fmt: skip
    cli.table(
        ["ID", "ENV", "BY", "STATE", "APPROVALS", "EXPIRES", "REVIEW"],
        [[r["id"], r["env"], r["requester"], r["state"] if r["live"] or r["state"] == "revoked"
          else "expired", ", ".join(r["approvals"]) or "-", r["expires_at"],
          "pending" if r["review_pending"] else "done"] for r in found["requests"]],
    )  # fmt: skip
