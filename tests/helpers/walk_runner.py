"""A process for tests/test_parallel_walk.py: the audit walk on two cores, run where
no test framework shares the process (a fork copies whatever runs in it).

    walk_runner.py compare SPEC.json    each case's verification under each plan, as
                                        JSON on stdout, with the forks each made and
                                        the records opened in this process
    walk_runner.py hold VAULT           a walk on two cores that stops in a decryption:
                                        prints "ready", waits on stdin (signals, SIGKILL)
    walk_runner.py cli PLAN COUNTS ...  the CLI (``python -m bsecrets ...``) with that
                                        plan; the number of forks written to COUNTS

Run with tests/ on PYTHONPATH; the vaults' passphrase is helpers.values.PASSPHRASE.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bsecrets.audit.chain import Anchor, Opener, Row, Walk, walk
from bsecrets.audit.local_log import LocalAuditLog
from bsecrets.audit.parallel_walk import WalkPlan, walk_on_two_cores
from bsecrets.errors import BsecretsError
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.vault import LocalVault
from helpers.values import PASSPHRASE

FORKS = [0]
os.register_at_fork(after_in_parent=lambda: FORKS.__setitem__(0, FORKS[0] + 1))


class CountingLog(LocalAuditLog):
    """The log, counting the records this process opens (a worker's are in its own)."""

    opened = 0

    def opener(self, keys: Any) -> Opener:
        inner = super().opener(keys)

        def counted(time: str, record: bytes) -> bytes | None:
            CountingLog.opened += 1
            return inner(time, record)

        return counted


def open_log(path: str) -> CountingLog:
    return CountingLog(LocalVault.open(Path(path), Credentials(passphrase=PASSPHRASE), utcnow))


def children() -> list[int]:
    """This process's children (Linux: /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found += [int(pid) for pid in (task / "children").read_text().split()]
    return found


def killing_worker(rows: Iterator[Row], after: int) -> Iterator[Row]:
    """The rows; once ``after`` have passed, the worker is killed (it is lost mid-walk)."""
    for done, row in enumerate(rows):
        if done == after:
            for pid in children():
                os.kill(pid, signal.SIGKILL)
        yield row


def _plain(result: Walk) -> list[Any]:
    problem = result.problem._asdict() if result.problem else None
    macs = {str(seq): digest.hex() for seq, digest in result.macs_at.items()}
    return [result.checked, result.last_seq, result.head.hex(), problem, macs]


def losing_worker(log: CountingLog, keys: Any, after: int, plan: dict[str, Any]) -> list[Any]:
    """The one-core walk, and the walk whose worker is killed after ``after`` rows (in a
    read transaction: the row generators end here, before it does)."""
    state = log.state(keys)
    args = (keys.manifest_key, log.opener(keys))
    start = {"first_seq": state.first_seq, "prev": state.prev}
    outcomes: list[Any] = []
    for rows, two in ((log.rows(), False), (killing_worker(log.rows(), after), True)):
        try:
            if two:
                walked = walk_on_two_cores(rows, *args, **start, rows_hint=10**6, plan=plan)
            else:
                walked = walk(rows, *args, **start)
            outcomes.append(_plain(walked))
        except BsecretsError as exc:
            outcomes.append({"error": exc.message})
    return outcomes


def compare(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for case in spec["cases"]:
        log = open_log(case["path"])
        keys = log.reading_keys()
        assert keys is not None
        anchor = Anchor.parse(case["anchor"]) if case.get("anchor") else None
        results = []
        for plan in spec["plans"]:
            log.walk_plan = WalkPlan(**plan)
            before, opened = FORKS[0], CountingLog.opened
            try:
                result: Any = log.verify(keys, anchor).to_dict()
            except BsecretsError as exc:
                result = {"error": exc.message}
            forks, opened = FORKS[0] - before, CountingLog.opened - opened
            results.append({"plan": plan, "forks": forks, "opened": opened, "result": result})
        if case.get("kill_worker_after") is not None:  # a walk that loses its worker
            plan = WalkPlan(**spec["plans"][-1])
            with log.store.read():
                one, lost = losing_worker(log, keys, case["kill_worker_after"], plan)
            results.append({"lost": lost, "one_core": one})
        log.vault.close()
        out.append({"name": case["name"], "results": results})
    return out


def hold(path: str) -> None:
    """A walk on two cores that stops in this process's 15th decryption (in the third
    chunk: "mw" gives the second to the worker), waiting on stdin."""
    log = open_log(path)
    keys = log.reading_keys()
    assert keys is not None
    parent, opened, inner = os.getpid(), [0], log.opener(keys)

    def opener(time: str, record: bytes) -> bytes | None:
        if os.getpid() == parent:
            opened[0] += 1
            if opened[0] == 15:
                print("ready", flush=True)
                sys.stdin.readline()
        return inner(time, record)

    plan = WalkPlan(threshold=20, chunk_rows=10, schedule="mw")
    interrupted = False
    try:
        with log.store.read():
            state = log.state(keys)
            walk_on_two_cores(
                log.rows(), keys.manifest_key, opener, first_seq=state.first_seq,
                prev=state.prev, rows_hint=10**6, plan=plan,
            )  # fmt: skip
    except KeyboardInterrupt:  # as the CLI: the vault closed while the walk's frames live
        log.vault.close()
        interrupted = True
    # (the error is gone here, and with it the walk's row generators)
    print(f"{'interrupted' if interrupted else 'done'}; children left: {children()}", flush=True)
    sys.exit(130 if interrupted else 0)


def cli(plan: str, counts: str, args: list[str]) -> None:
    LocalAuditLog.walk_plan = WalkPlan(**json.loads(plan))
    sys.argv = ["bsecrets", *args]
    # the CLI ends in os._exit after the exit handlers (cli/process_exit.py)
    atexit.register(lambda: Path(counts).write_text(str(FORKS[0])))
    runpy.run_module("bsecrets", run_name="__main__")


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "compare":
        print(json.dumps(compare(json.loads(Path(rest[0]).read_text()))))
    elif mode == "hold":
        hold(rest[0])
    else:
        cli(rest[0], rest[1], rest[2:])
