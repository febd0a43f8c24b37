"""`audit verify` on two cores (bsecrets/audit/parallel_walk.py) gives exactly the
one-core walk's verification: on a clean log and on a campaign of tampered logs
(a byte flipped in a record or a MAC, a MAC of another type, a row deleted, rows
swapped, a copy inserted, the tail cut), with the damage in the first chunk, in a
worker's chunk, on either side of a boundary between chunks and at the last event,
under adaptive and fixed shares of the chunks; also when its worker is killed
mid-walk. The worker does not outlive its parent (SIGKILL) nor a Ctrl-C.

A real 150-event log; small chunks (the plan is injectable) so that a short log
takes the worker's path; and the default plan on a real log past its threshold.
Everything runs in a child process (tests/helpers/walk_runner.py): a fork must not
copy the test framework.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke
from helpers.local_vault import make_vault

from bsecrets.audit.local_log import LocalAuditLog
from bsecrets.audit.logger import AuditLogger
from bsecrets.audit.parallel_walk import PLAN
from bsecrets.models import AccessContext
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile.store import VaultStore

EVENTS = 150
CHUNK = 10  # chunk k (from 0) holds events 10k+1 .. 10k+10
RUNNER = Path(__file__).parent / "helpers" / "walk_runner.py"
ONE_CORE = {"threshold": 10**9}
PLANS = [
    ONE_CORE,
    {"threshold": 20, "chunk_rows": CHUNK},  # adaptive: to the worker while it has room
    {"threshold": 20, "chunk_rows": CHUNK, "schedule": "mw"},  # odd chunks: the worker's
    {"threshold": 20, "chunk_rows": CHUNK, "schedule": "w", "depth": 3},  # all the worker's
    {"threshold": 20, "chunk_rows": 7, "schedule": "wm", "held": 2},  # waits to stay bounded
]
Rows = list[tuple[Any, ...]]
Mutation = Callable[[Rows], Rows]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A vault file whose audit log holds exactly EVENTS events."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BSECRETS_INSECURE_TEST_KDF", "1")
        path = tmp_path_factory.mktemp("walk") / "vault.db"
        vault = make_vault(path)
        log = LocalAuditLog(vault)
        logger = AuditLogger(log, AccessContext("ann", "box", 1), utcnow, {})
        with vault.store.write():
            for i in range(EVENTS):
                logger.record("get" if i % 3 else "put", "dev", name=f"app/key{i % 17}")
        vault.close()
        yield path


def _rows(path: Path) -> Rows:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT seq, time, record, mac FROM audit_events ORDER BY seq"
        ).fetchall()


class NotUtf8(bytes):
    """A time stored as TEXT that does not decode: the cursor raises on its row."""


def _tampered(pristine: Path, folder: Path, name: str, mutation: Mutation) -> Path:
    path = folder / f"{name}.db"
    path.write_bytes(pristine.read_bytes())
    path.chmod(0o600)
    rows = mutation(_rows(path))
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM audit_events")
        conn.executemany("INSERT INTO audit_events VALUES (?, ?, ?, ?)", rows)
        for seq, time, *_ in rows:
            if isinstance(time, NotUtf8):
                conn.execute(
                    "UPDATE audit_events SET time = CAST(? AS TEXT) WHERE seq = ?", (time, seq)
                )
    conn.close()
    return path


def _flip(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1 :]


def edit_record(s: int) -> Mutation:
    return lambda rows: [
        (q, t, _flip(r, (q * 7) % len(r)) if q == s else r, m) for q, t, r, m in rows
    ]


def edit_mac(s: int) -> Mutation:
    return lambda rows: [(q, t, r, _flip(m, q % 32) if q == s else m) for q, t, r, m in rows]


def mac_text(s: int) -> Mutation:
    return lambda rows: [(q, t, r, "text" if q == s else m) for q, t, r, m in rows]


def retime(s: int) -> Mutation:
    return lambda rows: [
        (q, t.replace("Z", "+00:00") if q == s else t, r, m) for q, t, r, m in rows
    ]


def not_utf8(s: int) -> Mutation:
    return lambda rows: [(q, NotUtf8(b"\xff\xfe") if q == s else t, r, m) for q, t, r, m in rows]


def delete(s: int, renumber: bool = False) -> Mutation:
    def mutate(rows: Rows) -> Rows:
        kept = [row for row in rows if row[0] != s]
        return [(q - 1 if renumber and q > s else q, *rest) for q, *rest in kept]

    return mutate


def swap(a: int, b: int) -> Mutation:
    def mutate(rows: Rows) -> Rows:
        by_seq = {row[0]: row for row in rows}
        out = {**by_seq, a: (a, *by_seq[b][1:]), b: (b, *by_seq[a][1:])}
        return [out[q] for q in sorted(out)]

    return mutate


def copy_in(s: int, source: int) -> Mutation:
    """A copy of an earlier event slipped in at ``s``, the later rows renumbered."""

    def mutate(rows: Rows) -> Rows:
        copy = (s, *rows[source - 1][1:])
        return [*rows[: s - 1], copy, *[(q + 1, *rest) for q, *rest in rows[s - 1 :]]]

    return mutate


def truncate(s: int) -> Mutation:
    return lambda rows: [row for row in rows if row[0] < s]


def forged_tail(rows: Rows) -> Rows:
    return [*rows, (EVENTS + 1, rows[-1][1], b"\x00" * 80, b"\x00" * 32)]


def _cases(pristine: Path) -> list[tuple[str, Mutation, str | None]]:
    """(name, mutation, anchor): fixed ones at the chunks' edges, then seeded ones."""
    rows = _rows(pristine)
    head = f"{EVENTS}:{rows[-1][3].hex()}"
    mid = f"35:{rows[34][3].hex()}"  # in chunk 3: a worker's under "mw"
    fixed: list[tuple[str, Mutation, str | None]] = [
        ("clean", lambda r: r, None),
        ("clean, head anchored", lambda r: r, head),
        ("clean, anchor in a worker's chunk", lambda r: r, mid),
        ("clean, a wrong anchor", lambda r: r, f"35:{'ab' * 32}"),
        ("record 1", edit_record(1), None),
        ("record 15 (a worker's)", edit_record(15), head),
        ("mac 10 (a chunk's last)", edit_mac(10), None),
        ("mac 11 (a chunk's first)", edit_mac(11), None),
        ("mac 20 of another type (before a boundary)", mac_text(20), None),
        ("time 21", retime(21), None),
        ("delete 11", delete(11), None),
        ("delete 20, renumbered", delete(20, renumber=True), head),
        ("swap 10 and 11 (across a boundary)", swap(10, 11), None),
        ("swap 3 and 140 (first chunk and far)", swap(3, 140), None),
        ("swap 15 and 16 (in a worker's)", swap(15, 16), None),
        ("copy of 5 at 31", copy_in(31, 5), None),
        ("record 150 (the last)", edit_record(EVENTS), head),
        ("mac 150 (the last)", edit_mac(EVENTS), None),
        ("truncated after 120", truncate(121), head),
        ("truncated after 120, anchor in a worker's chunk", truncate(121), mid),
        ("the last deleted", delete(EVENTS), head),
        ("a forged tail", forged_tail, None),
        ("two failures: 40 then 95", lambda r: edit_mac(95)(edit_record(40)(r)), None),
        ("two failures: 95 in a chunk before 131", lambda r: swap(131, 140)(delete(95)(r)), head),
        ("time 57 does not decode (the cursor raises)", not_utf8(57), None),
        ("mac 52, then time 57 does not decode", lambda r: not_utf8(57)(edit_mac(52)(r)), None),
        ("time 3 does not decode, mac 52", lambda r: not_utf8(3)(edit_mac(52)(r)), None),
    ]
    rng = random.Random(20)  # seeded: the same cases every run
    makers: list[Callable[[int], Mutation]] = [
        edit_record, edit_mac, mac_text, retime, delete, lambda s: delete(s, renumber=True),
        lambda s: swap(s, min(EVENTS, s + rng.randint(1, 30))),
        lambda s: copy_in(s, rng.randint(1, s - 1)) if s > 1 else edit_record(s), truncate,
    ]  # fmt: skip
    drawn = []
    for i in range(12):
        s = rng.choice([*range(1, EVENTS + 1), *(k * CHUNK + d for k in range(15) for d in (0, 1))])
        s = max(1, min(EVENTS, s))
        maker = rng.choice(makers)
        drawn.append((f"seeded {i}: event {s}", maker(s), rng.choice([None, head])))
    return fixed + drawn


def _runner(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, str(RUNNER), *args], env=env, capture_output=True, text=True,
        timeout=120, check=False, **kwargs,
    )  # fmt: skip


def test_two_cores_give_the_one_core_walks_verification(pristine: Path, tmp_path: Path) -> None:
    cases = [
        {"name": name, "path": str(_tampered(pristine, tmp_path, f"case{i}", mutation)),
         "anchor": anchor, "kill_worker_after": 45 if i % 4 == 0 else None}
        for i, (name, mutation, anchor) in enumerate(_cases(pristine))
    ]  # fmt: skip
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"cases": cases, "plans": PLANS}))
    proc = _runner("compare", str(spec))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    kinds = set()
    for case in json.loads(proc.stdout):
        one_core, *shared = case["results"]
        assert one_core["forks"] == 0, case["name"]
        expected = one_core["result"]
        for run in shared:
            if "lost" in run:  # its worker killed mid-walk: the one-core walk's result
                assert run["lost"] == run["one_core"], case["name"]
                continue
            assert run["forks"] == 1, (case["name"], run["plan"])
            assert run["result"] == expected, (case["name"], run["plan"])
        problem = expected.get("problem")
        kinds.add("error" if "error" in expected else problem["kind"] if problem else "none")
        if case["name"] == "clean":  # the worker's answers are used, not walked again here
            opened = [run["opened"] for run in case["results"] if "opened" in run]
            # (the first verify also opens the newest event for the witness, then cached)
            assert opened[0] >= EVENTS and opened[1] <= EVENTS - CHUNK, opened
            # "mw": chunks 0, 2 .. 14 here; "w": none; "wm" by 7: 1, 3 .. 19 and 21 (3 rows)
            assert opened[2:] == [8 * CHUNK, 0, 10 * 7 + 3], opened
    # the campaign reaches every kind of finding (else it tests less than it says)
    assert kinds >= {"none", "edited", "missing", "reordered", "inserted", "truncated", "anchor"}
    assert "error" in kinds  # and a cursor that raises: the same error, where one core meets it


def test_a_short_log_stays_on_one_core(pristine: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    plans = [ONE_CORE, {"threshold": EVENTS + 1, "chunk_rows": CHUNK}, {"threshold": EVENTS}]
    spec.write_text(
        json.dumps({"cases": [{"name": "clean", "path": str(pristine)}], "plans": plans})
    )
    proc = _runner("compare", str(spec))
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)[0]["results"]
    assert [run["forks"] for run in results] == [0, 0, 1]
    assert results[0]["result"] == results[1]["result"] == results[2]["result"]
    assert results[0]["result"]["events"] == EVENTS


def test_the_cli_verifies_on_two_cores(vault: Path) -> None:
    """The real command (its exit codes and output) with a plan that shares this log."""
    for i in range(12):
        assert invoke(["put", f"k{i}", "-e", "dev"], input=f"value-{i}").exit_code == 0
    plan = json.dumps({"threshold": 4, "chunk_rows": 2})
    counts = vault / "forks"
    clean = _runner("cli", plan, str(counts), "audit", "verify", "--json")
    assert clean.returncode == 0, clean.stderr
    report = json.loads(clean.stdout)
    assert report["ok"] and report["events"] == 14, report  # init, 12 puts, this verify
    assert counts.read_text() == "1"
    with sqlite3.connect(vault / ".bsecrets" / "vault.db") as conn:
        conn.execute("UPDATE audit_events SET mac = randomblob(32) WHERE seq = 9")
    conn.close()
    bad = _runner("cli", plan, str(counts), "audit", "verify")
    assert bad.returncode == 5, bad.stderr
    assert bad.stderr.startswith(
        "error: audit log: edited at event 9: event 9 was changed (its MAC does not match)"
    ), bad.stderr
    assert counts.read_text() == "1"


def test_the_default_plan_on_a_log_past_its_threshold(vault: Path) -> None:
    """The plan users get (WalkPlan's defaults: 10,000 events, chunks of 1,000) on a real
    log past the threshold, through the CLI: it forks its worker, and gives the one-core
    answer, clean and with an event edited in a chunk the worker walks."""
    count = PLAN.threshold + PLAN.chunk_rows
    lines = "".join(f"K{i:05d}=v{i}\n" for i in range(count))
    Path("many.env").write_text(lines)
    assert invoke(["import", "many.env"]).exit_code == 0  # an event per secret, and one more
    counts = vault / "forks"
    default, one_core = "{}", json.dumps(ONE_CORE)
    clean = _runner("cli", default, str(counts), "audit", "verify", "--json")
    assert clean.returncode == 0, clean.stderr
    report = json.loads(clean.stdout)
    assert report["ok"] and report["events"] > PLAN.threshold, report
    assert counts.read_text() == "1"
    with sqlite3.connect(vault / ".bsecrets" / "vault.db") as conn:
        # in the fourth chunk (which side walks it is the schedule's: the answer is not)
        conn.execute("UPDATE audit_events SET mac = randomblob(32) WHERE seq = ?", (3_500,))
    conn.close()
    shared = _runner("cli", default, str(counts), "audit", "verify")
    assert counts.read_text() == "1"
    alone = _runner("cli", one_core, str(counts), "audit", "verify")
    assert counts.read_text() == "0"
    assert shared.returncode == alone.returncode == 5, shared.stderr
    assert shared.stderr == alone.stderr
    assert shared.stderr.startswith("error: audit log: edited at event 3500:"), shared.stderr


def _state(pid: int) -> str:
    """A process's state letter; "" once it is gone (Z: exited, not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _hold(pristine: Path) -> tuple[subprocess.Popen[str], int]:
    """The runner mid-walk, its worker forked; returns it and the worker's pid."""
    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(RUNNER), "hold", str(pristine)], env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    task = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    workers = [int(pid) for pid in task.read_text().split()]
    assert len(workers) == 1, workers
    return proc, workers[0]


def _gone(pid: int) -> bool:
    """Wait (up to a minute: a deadline, not a measure) for ``pid`` to exit."""
    deadline = time.monotonic() + 60
    while _state(pid) not in ("", "Z"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the worker is Linux's")
def test_the_worker_does_not_outlive_a_killed_parent(pristine: Path) -> None:
    proc, worker = _hold(pristine)
    assert _state(worker) not in ("", "Z")
    proc.kill()  # SIGKILL: no finally, no cleanup; the worker sees EOF on its pipe
    proc.wait(timeout=60)
    assert _gone(worker), f"worker {worker} still running after its parent was killed"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the worker is Linux's")
def test_ctrl_c_ends_the_walk_and_its_worker_quietly(pristine: Path) -> None:
    proc, worker = _hold(pristine)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: parent and worker alike
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert out == "interrupted; children left: []\n"  # ended and reaped by the walk
    assert err == ""  # no traceback, nothing from the worker
    assert _state(worker) == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the worker is Linux's")
def test_the_walk_ends_its_worker(pristine: Path) -> None:
    proc, worker = _hold(pristine)
    out, err = proc.communicate("go on\n", timeout=60)
    assert (proc.returncode, out, err) == (0, "done; children left: []\n", "")
    assert _state(worker) == ""


def test_a_row_stream_dropped_after_its_store_closed_ends_quietly(pristine: Path) -> None:
    """Ctrl-C in a walk: the CLI closes the vault while the walk's frames still hold the
    rows' generator, dropped later. Closing it then raised (printed on stderr as
    "Exception ignored ... cannot operate on a closed database")."""
    store = VaultStore.open(pristine)
    rows = store.iter_optional_table("audit_events", "SELECT seq FROM audit_events ORDER BY seq")
    assert next(rows) == (1,)
    store.close()
    rows.close()
