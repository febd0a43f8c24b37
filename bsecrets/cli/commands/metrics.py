"""metrics: this vault's metrics in Prometheus' text format, for a host without
``bsecrets serve`` (docs/observability.md); services/metrics_report.py gathers them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bsecrets.cli.context import obj
from bsecrets.errors import UsageError

TEXTFILE_NAME = "bsecrets.prom"


def metrics(
    ctx: typer.Context,
    textfile: Annotated[
        Path | None,
        typer.Option(
            "--textfile", metavar="DIR",
            help="Write DIR/bsecrets.prom (mode 0644, replaced atomically) for "
            "node_exporter's textfile collector, instead of printing.",
        ),
    ] = None,
) -> None:  # fmt: skip
    """Print the metrics of this profile's vault in Prometheus' text format: operations
    counted from the audit log (verified first), secrets, rotations due and overdue,
    break-glass sessions active, each backend's answer. For the vault's owner; exit 5
    when the audit chain fails verification (the metrics still say so).

    Examples:
      bsecrets metrics
      bsecrets metrics --textfile /var/lib/prometheus/node-exporter
    """
    cli = obj(ctx)
    if textfile is not None and not textfile.is_dir():
        raise UsageError(
            f"--textfile {textfile} is not a folder",
            hint="give the folder node_exporter reads (--collector.textfile.directory); "
            "create it first",
        )
    from bsecrets.services.metrics_report import collect

    found, problem = collect(cli.manager)
    text = found.exposition()
    if textfile is None:
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
    else:
        from bsecrets.files import write_readable_file

        target = textfile / TEXTFILE_NAME
        write_readable_file(target, text)  # bsecrets_audit_verify_ok 0 too: for the alert
        if problem is None:
            cli.message(f"wrote {target}")
    if problem is not None:
        raise problem
