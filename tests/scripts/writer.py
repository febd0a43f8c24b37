"""A writer process for tests/test_concurrency.py.

It unlocks the vault, says it is ready (a file named after its id in --ready),
waits for the start file (--go), then writes:

* ``cli``: --count runs of the real command line, in this process (``bsecrets
  put NAME --from-file F --json``; the same code as ``python -m bsecrets`` minus
  the interpreter start-up), alternating between the name ``shared`` and the
  name ``own/ID``. One line per acknowledged write: ``A NAME VERSION VALUE``.
  Whatever the command writes to stderr is passed through.
* ``cas``: check-and-set on the name ``race`` until it reaches --target:
  read the current version N, ``put --if-version N``; prints ``W VERSION VALUE``
  for a win and ``C N EXIT_CODE`` for a conflict.

Credentials come from the environment (BSECRETS_SESSION or BSECRETS_PASSPHRASE).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import sys
import time
from pathlib import Path


def wait_for_start(ready: Path, writer_id: int, go: Path) -> None:
    (ready / str(writer_id)).touch()
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("writer: no start signal within 60 s")
        time.sleep(0.001)


def run_cli(args: argparse.Namespace) -> int:
    from bsecrets.cli.app import app

    for module in ("bsecrets.services.manager", "bsecrets.backends.local.adapter"):
        importlib.import_module(module)  # before the start line, not during the race

    value_file = Path(args.ready) / f"value-{args.id}"
    wait_for_start(Path(args.ready), args.id, Path(args.go))
    for i in range(args.count):
        name = "shared" if i % 2 == 0 else f"own/{args.id}"
        value = f"w{args.id}-{i}"
        value_file.write_text(value)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                app(
                    [
                        "--profile",
                        args.profile,
                        "put",
                        name,
                        "--from-file",
                        str(value_file),
                        "-e",
                        args.env,
                        "--json",
                    ],
                    prog_name="bsecrets",
                )
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        if code != 0:
            return code  # the command already wrote its error to stderr
        print(f"A {name} {json.loads(out.getvalue())['version']} {value}", flush=True)
    return 0


def run_cas(args: argparse.Namespace) -> int:
    from bsecrets.cli.exit_codes import exit_code_of
    from bsecrets.config.loader import load_profile
    from bsecrets.errors import BsecretsError, SecretNotFound
    from bsecrets.services.manager import SecretsManager
    from bsecrets.vaultfile.credentials import Credentials

    creds = Credentials(
        session_token=os.environ.get("BSECRETS_SESSION"),
        passphrase=os.environ.get("BSECRETS_PASSPHRASE"),
    )
    manager = SecretsManager(load_profile(Path(args.profile)), creds)
    try:
        manager.local_vault().private_key()  # unlock before the start line
        wait_for_start(Path(args.ready), args.id, Path(args.go))
        for attempt in range(args.count):
            try:
                current = manager.get(args.env, "race").version
            except SecretNotFound:
                current = 0
            if current >= args.target:
                break
            value = f"w{args.id}-a{attempt}"
            try:
                result = manager.put(args.env, "race", value.encode(), if_version=current)
            except BsecretsError as exc:
                if int(exit_code_of(exc)) != 7:
                    raise
                print(f"C {current} {int(exit_code_of(exc))}", flush=True)
            else:
                print(f"W {result.version} {value}", flush=True)
        return 0
    except BsecretsError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return int(exit_code_of(exc))
    finally:
        manager.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["cli", "cas"])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--env", default="dev")
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--target", type=int, default=0)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--go", required=True)
    args = parser.parse_args()
    return run_cli(args) if args.mode == "cli" else run_cas(args)


if __name__ == "__main__":
    sys.exit(main())
