#!/usr/bin/env python3
"""The bsecrets CLI with auditing switched off: the baseline of bench/bench_audit.py.

    python bench/null_audit_cli.py ARGS...            # every SecretsManager gets NullAuditSink()
    python bench/null_audit_cli.py --audited ARGS...  # unpatched: the real audit log

``SecretsManager.__init__`` is wrapped so that ``audit_sink`` defaults to
``NullAuditSink()``; then ``bsecrets.cli.app.main()`` runs ARGS as ``bsecrets``
would. With ``--audited`` nothing is patched, but the same modules are
imported in the same order, so both variants pay the same start-up and differ
only in the sink. For benchmarks only: a command run this way leaves no audit
trail.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from bsecrets.audit.logger import NullAuditSink
from bsecrets.services.manager import SecretsManager


def patch_null_sink() -> None:
    original = SecretsManager.__init__

    @functools.wraps(original)
    def __init__(self: SecretsManager, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("audit_sink") is None:
            kwargs["audit_sink"] = NullAuditSink()
        original(self, *args, **kwargs)

    SecretsManager.__init__ = __init__  # type: ignore[method-assign]


def run() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--audited"]:
        args = args[1:]
    else:
        patch_null_sink()
    sys.argv = ["bsecrets", *args]
    from bsecrets.cli.app import main

    main()


if __name__ == "__main__":
    run()
