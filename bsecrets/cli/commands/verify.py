"""verify: is the whole local vault intact (pages, keys, rows, audit chain)?"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bsecrets.audit.chain import Anchor
from bsecrets.cli.context import JsonOption, obj
from bsecrets.cli.exit_codes import exit_code_of
from bsecrets.errors import IntegrityError
from bsecrets.services.verify import verify_vault


def verify(
    ctx: typer.Context,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            metavar="SEQ:HEX",
            help="The audit head an external witness kept (from 'audit anchor'); "
            "default: the one in the OS keyring.",
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Check the whole vault file: SQLite pages, keys, every environment's rows, and
    the audit chain. Exit 0 if intact, 5 listing each problem once.

    Examples:
      bsecrets verify
      bsecrets verify --json
      bsecrets verify --anchor 1234:9f86d081884c7d65
    """
    cli = obj(ctx)
    given = Anchor.parse(anchor) if anchor is not None else None
    result = verify_vault(cli.manager, given)
    if cli.want_json(json_out):
        cli.emit_json(result.to_dict())
        if not result.ok:
            raise typer.Exit(int(exit_code_of(IntegrityError)))
        return
    out = sys.stdout.write
    for problem in result.problems:
        out(f"problem: {problem.check}: {problem.where}: {problem.problem}\n")
    if not result.ok:
        places = sorted({p.check for p in result.problems})
        count = len(result.problems)
        raise IntegrityError(
            f"{result.vault_file} is not intact: {count} problem{'s' if count > 1 else ''} "
            f"({', '.join(places)}), listed above",
            hint="restore the vault file from a backup, keep this copy as evidence, "
            "and do not trust values read from it (docs/security.md)",
        )
    if not cli.settings.quiet:
        envs = ", ".join(
            f"{env} (generation {e['generation']}, "
            f"{e['secrets']} secret{'' if e['secrets'] == 1 else 's'})"
            for env, e in result.environments.items()
        )
        audit = result.audit
        assert audit is not None  # ok implies the chain was walked
        span = f"{audit.first_seq}-{audit.last_seq}" if audit.events else "none"
        out(f"ok: {result.vault_file} is intact\n")
        out("pages: SQLite integrity_check found no damage\n")
        out(f"environments: {envs or 'none'}: keys, manifests, rows and values check out\n")
        out(f"audit: {audit.events} events ({span}), chain intact, every environment matches\n")
        out(f"anchor: {audit.anchor}\n")
