"""kill -9 during writes (K1): no acknowledged write lost, no corrupt vault, and
no change without its audit event.

A writer process loops ``put`` and reports every acknowledged write on a pipe
the moment the call returns; the test SIGKILLs it at a random moment and then
checks the vault: SQLite's integrity_check, every acknowledged version reads
back exactly, the write that was in flight is all there or not there at all,
``ls`` works and no version is missing. Most writers are forked from the test
process (an in-process loop over the core: no interpreter start-up per kill);
some are ``python -m bsecrets put`` processes.

What this cannot show: a kill leaves the OS page cache alone, so it does not
test power loss (the research notes, section 0). ``synchronous=FULL`` is
checked as configuration instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers.values import PASSPHRASE

from bsecrets.config.loader import load_profile
from bsecrets.services.manager import SecretsManager
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.store import VaultStore

pytestmark = pytest.mark.slow

FORK_KILLS = 100
CLI_KILLS = 16
KILLS_PER_VAULT = 25  # then a full check and a fresh vault, to keep the file small
NAMES = 20
SEED = 1234


def value_of(counter: int, size: int) -> bytes:
    """The value of write number ``counter``: recomputable from the ack line alone."""
    stem = f"{counter}:".encode()
    return (stem + b"x" * size)[:size] if size > len(stem) else stem


@dataclass
class Ack:
    env: str
    name: str
    version: int
    counter: int
    size: int


@dataclass
class Ledger:
    """What the writers were told was stored, per (env, name): version -> (counter, size)."""

    versions: dict[tuple[str, str], dict[int, tuple[int, int]]] = field(default_factory=dict)
    phases: Counter[str] = field(default_factory=Counter)
    torn_wal: int = 0
    committed_unacked: int = 0
    in_flight_lost: int = 0
    acks: int = 0

    def record(self, ack: Ack) -> None:
        self.versions.setdefault((ack.env, ack.name), {})[ack.version] = (ack.counter, ack.size)
        self.acks += 1

    def latest(self, env: str, name: str) -> int:
        return max(self.versions.get((env, name), {0: (0, 0)}))


def _manager(root: Path) -> SecretsManager:
    return SecretsManager(load_profile(root / "bsecrets.yaml"), Credentials(passphrase=PASSPHRASE))


def _vault_file(root: Path) -> Path:
    return root / ".bsecrets" / "vault.db"


def _wal_checksum(data: bytes, s1: int, s2: int, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum (walChecksumBytes), continued from (s1, s2)."""
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s1 = (s1 + words[i] + s2) & 0xFFFFFFFF
        s2 = (s2 + words[i + 1] + s1) & 0xFFFFFFFF
    return s1, s2


def wal_tail(db: Path) -> int:
    """Valid WAL frames after the last commit frame: pages of a transaction that was
    being written when the process died (SQLite's recovery must ignore them)."""
    try:
        data = Path(f"{db}-wal").read_bytes()
    except FileNotFoundError:
        return 0
    if len(data) < 32 or struct.unpack(">I", data[:4])[0] not in (0x377F0682, 0x377F0683):
        return 0
    big_endian = bool(data[3] & 1)
    page_size = struct.unpack(">I", data[8:12])[0]
    salts, frame = data[16:24], 24 + page_size
    offsets = []
    offset = 32
    while offset + frame <= len(data) and data[offset + 8 : offset + 16] == salts:
        offsets.append(offset)
        offset += frame
    commits = [o for o in offsets if struct.unpack(">I", data[o + 4 : o + 8])[0]]
    tail = offsets[offsets.index(commits[-1]) + 1 :] if commits else offsets
    start = commits[-1] if commits else 8  # the checksum stored in the frame (or header)
    s1, s2 = struct.unpack(">II", data[start + 16 : start + 24])
    valid = 0
    for o in tail:
        s1, s2 = _wal_checksum(data[o : o + 8] + data[o + 24 : o + frame], s1, s2, big_endian)
        if (s1, s2) != struct.unpack(">II", data[o + 16 : o + 24]):
            break
        valid += 1
    return valid


# --- the writers -----------------------------------------------------------------


def _forked_writer(root: Path, out_fd: int, first: int, seed: int) -> None:
    """Child: open the vault, loop puts until killed. Never returns."""
    code = 0
    try:
        rng = random.Random(seed)

        def emit(line: str) -> None:
            os.write(out_fd, line.encode() + b"\n")

        m = _manager(root)
        store = m.local_vault().store
        begin = store.write

        @contextlib.contextmanager
        def write() -> Iterator[None]:  # markers around the (outermost) write transaction
            outer = not store._in_tx  # a put's own write() joins the audited operation's
            with begin():
                if outer:
                    emit("T")  # BEGIN IMMEDIATE done: the write lock is held
                yield
            if outer:
                emit("C")  # COMMIT returned

        store.write = write  # type: ignore[method-assign]
        emit("S")
        for counter in range(first, first + 5000):  # bounded; the parent kills far earlier
            env = "prod" if rng.random() < 0.2 else "dev"
            name = f"k{rng.randrange(NAMES)}"
            size = rng.randrange(20_000, 200_000) if rng.random() < 0.15 else rng.randrange(1, 300)
            emit(f"B {env} {name} {counter} {size}")
            result = m.put(env, name, value_of(counter, size))
            emit(f"A {env} {name} {result.version} {counter} {size}")
    except BaseException as exc:  # reported to the parent, which fails the test
        with contextlib.suppress(Exception):
            os.write(out_fd, f"E {type(exc).__name__}: {exc}\n".encode())
        code = 3
    finally:
        os._exit(code)


def _run_forked_writer(root: Path, first: int, rng: random.Random) -> tuple[list[str], int]:
    """Fork a writer, SIGKILL it at a random moment, return its lines and wait status."""
    read_fd, write_fd = os.pipe()
    seed = rng.randrange(2**32)
    early = rng.random() < 0.1  # sometimes while it opens and unlocks the vault
    delay = rng.uniform(0, 0.04) if early else rng.uniform(0.005, 0.12)
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _forked_writer(root, write_fd, first, seed)
    os.close(write_fd)
    buf = b""
    started = None if not early else time.monotonic()
    give_up = time.monotonic() + 20
    try:
        while time.monotonic() < give_up:
            if started is not None and time.monotonic() >= started + delay:
                break
            ready, _, _ = select.select([read_fd], [], [], 0.002)
            if ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                buf += chunk
                if started is None and b"S\n" in buf:
                    started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        while chunk := os.read(read_fd, 65536):
            buf += chunk
    finally:
        os.close(read_fd)
    return buf.decode().splitlines(), status


def _file_state(db: Path) -> tuple[object, ...]:
    """What changes when a write reaches the disk: the WAL's size, the main file's
    size and mtime (a rollback-journal or journal-less vault writes there directly)."""
    state: list[object] = []
    for path in (Path(f"{db}-wal"), db):
        try:
            st = path.stat()
        except FileNotFoundError:
            state.append(None)
        else:
            state.append(st.st_size if path != db else (st.st_size, st.st_mtime_ns))
    return tuple(state)


def _killed_cli_put(
    root: Path, env: str, name: str, counter: int, size: int, how: str, rng: random.Random
) -> tuple[list[str], int]:
    """`python -m bsecrets put` SIGKILLed. ``how``:

    * "WAL header": 0-1 ms after its commit starts (SQLite writes and, with
      synchronous=FULL, syncs the WAL header before the frames);
    * "WAL frames": 0-0.3 ms after the first frame reaches the WAL (or, without a
      WAL, after the main file changes);
    * "vault open": 0-15 ms after /proc/PID/fd shows the vault;
    * "random": 150-600 ms after the start.

    Returns (the writer's lines, returncode)."""
    value_file = root / "value.bin"
    value_file.write_bytes(value_of(counter, size))
    db = _vault_file(root)
    before = _file_state(db)
    with open(value_file, "rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bsecrets", "put", name, "-e", env, "--json"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=root,
        )
    try:
        deadline = time.monotonic() + 20
        if how.startswith("WAL"):
            least = 1 if how == "WAL header" else 33  # bytes of WAL: header, then frames
            while proc.poll() is None and time.monotonic() < deadline:
                state = _file_state(db)
                if (state[0] or 0) >= least or state[1] != before[1]:
                    break
            spin = time.monotonic() + rng.uniform(0, 0.001 if how == "WAL header" else 0.0003)
            while time.monotonic() < spin:
                pass
        elif how == "vault open":
            while proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    fds = os.listdir(f"/proc/{proc.pid}/fd")
                    if any(_readlink(f"/proc/{proc.pid}/fd/{fd}") == str(db) for fd in fds):
                        break
                time.sleep(0.0005)
            time.sleep(rng.uniform(0, 0.015))
        else:
            time.sleep(rng.uniform(0.15, 0.6))
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    lines = [f"B {env} {name} {counter} {size}"]
    if proc.returncode == 0:
        version = json.loads(stdout)["version"]
        lines.append(f"A {env} {name} {version} {counter} {size}")
    else:
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, stderr.decode())
    return lines, proc.returncode


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


# --- the checks --------------------------------------------------------------------


def _parse(lines: list[str], ledger: Ledger) -> tuple[str, Ack | None]:
    """Record the acks; return the phase the writer was killed in and the write in flight."""
    phase, in_flight = "opening the vault", None
    for line in lines:
        tag, *rest = line.split()
        assert tag != "E", f"the writer failed: {line}"
        if tag == "S":
            phase = "between puts"
        elif tag == "B":
            env, name, counter, size = rest
            in_flight = Ack(env, name, 0, int(counter), int(size))
            phase = "in put, before BEGIN IMMEDIATE"
        elif tag == "T":
            phase = "write transaction open"
        elif tag == "C":
            phase = "committed, not yet acknowledged"
        elif tag == "A":
            env, name, version, counter, size = rest
            ledger.record(Ack(env, name, int(version), int(counter), int(size)))
            in_flight, phase = None, "between puts"
    return phase, in_flight


def check_after_kill(
    root: Path, ledger: Ledger, in_flight: Ack | None, *, full: bool, rng: random.Random
) -> None:
    db = _vault_file(root)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    m = _manager(root)
    try:
        latest = {}
        for env in ("dev", "prod"):
            lister = getattr(m, "list_secrets", None) or m.list
            latest.update({(env, s.name): s.version for s in lister(env, include_deleted=True)})
        if in_flight is not None:  # all there or not there at all
            key = (in_flight.env, in_flight.name)
            acked = ledger.latest(*key)
            assert latest.get(key, 0) in (acked, acked + 1), (key, latest.get(key), acked)
            if latest.get(key, 0) == acked + 1:
                got = m.get(in_flight.env, in_flight.name, acked + 1).value
                assert got == value_of(in_flight.counter, in_flight.size)
                in_flight.version = acked + 1
                ledger.record(in_flight)
                ledger.acks -= 1
                ledger.committed_unacked += 1
            else:
                ledger.in_flight_lost += 1
        # The acknowledged values are read through the environment's backend (the one
        # m.get calls: the same manifest, witness and AEAD checks of the same rows),
        # without an audited operation per read: each would commit an event, with an
        # fsync, ~8,000 times per test. The audit path after the kill is still taken
        # by the two audited 'ls' above and the in-flight get, on the same chain.
        for key, versions in ledger.versions.items():
            assert latest.get(key, 0) == max(versions), (key, latest.get(key), max(versions))
            assert sorted(versions) == list(range(1, max(versions) + 1)), key  # no gaps
            checks = sorted(versions) if full else [max(versions), rng.choice(list(versions))]
            for version in checks:
                counter, size = versions[version]
                got = m.backend(key[0]).get(key[1], version).value
                assert got == value_of(counter, size), (key, version)
        assert set(latest) == set(ledger.versions)
        # no change without its event: one 'put ok' event per stored version
        log = m.audit_log()
        keys = log.reading_keys()
        puts: Counter[tuple[str, str]] = Counter()
        if keys is not None:
            with log.store.read():
                for event in log.events(keys):
                    if event["action"] == "put" and event["outcome"] == "ok":
                        puts[event["env"], event["name"]] += 1
        assert dict(puts) == latest, (dict(puts), latest)
    finally:
        m.close()


def _fresh_vault(root: Path) -> None:
    from bsecrets.timeutil import utcnow
    from bsecrets.vaultfile.vault import LocalVault

    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{_vault_file(root)}{suffix}")
    LocalVault.create(
        _vault_file(root),
        Credentials(passphrase=PASSPHRASE),
        utcnow,
        passphrase=PASSPHRASE,
        use_keyring=False,
    ).close()


# --- the tests ---------------------------------------------------------------------


def test_vault_connections_are_durable_by_configuration(vault: Path) -> None:
    """The part of K2 a kill cannot show: WAL, synchronous=FULL, a busy timeout."""
    store = VaultStore.open(_vault_file(vault))
    try:
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    finally:
        store.close()


def test_kill_9_during_puts_loses_nothing_acknowledged(vault: Path) -> None:
    rng = random.Random(SEED)
    ledger = Ledger()
    counter = 1
    kills = 0
    started = time.monotonic()
    for round_no in range(FORK_KILLS):
        if round_no and round_no % KILLS_PER_VAULT == 0:
            check_after_kill(vault, ledger, None, full=True, rng=rng)
            _fresh_vault(vault)
            ledger.versions.clear()
        lines, status = _run_forked_writer(vault, counter, rng)
        assert os.WIFSIGNALED(status), (status, lines[-3:])  # it did not stop by itself
        assert os.WTERMSIG(status) == signal.SIGKILL
        kills += 1
        counter += 5000
        ledger.torn_wal += wal_tail(_vault_file(vault)) > 0
        phase, in_flight = _parse(lines, ledger)
        ledger.phases[phase] += 1
        check_after_kill(vault, ledger, in_flight, full=False, rng=rng)
    check_after_kill(vault, ledger, None, full=True, rng=rng)
    elapsed = time.monotonic() - started
    print(
        f"\n{kills} SIGKILLs of forked writers in {elapsed:.1f} s, {ledger.acks} acknowledged "
        f"puts checked; killed while: {dict(ledger.phases)}; WAL with frames after its last "
        f"commit: {ledger.torn_wal}; in-flight write committed but unacknowledged: "
        f"{ledger.committed_unacked}, not stored: {ledger.in_flight_lost}"
    )
    assert kills >= FORK_KILLS
    # enough kills must land inside a write transaction for the test to mean anything
    assert ledger.phases["write transaction open"] >= FORK_KILLS // 5, ledger.phases


def test_kill_9_of_the_put_command(vault: Path) -> None:
    rng = random.Random(SEED + 1)
    ledger = Ledger()
    outcomes: Counter[tuple[str, str]] = Counter()
    started = time.monotonic()
    hows = ["WAL header"] * 4 + ["WAL frames"] * 6 + ["vault open"] * 3 + ["random"] * 3
    for i, how in enumerate(hows[:CLI_KILLS]):
        env = "prod" if i % 4 == 0 else "dev"
        name = f"k{rng.randrange(4)}"
        big = how.startswith("WAL") or rng.random() < 0.5
        size = rng.randrange(200_000, 1_000_000) if big else rng.randrange(1, 300)
        lines, returncode = _killed_cli_put(vault, env, name, i, size, how, rng)
        ledger.torn_wal += wal_tail(_vault_file(vault)) > 0
        _, in_flight = _parse(lines, ledger)
        before = ledger.committed_unacked
        check_after_kill(vault, ledger, in_flight, full=False, rng=rng)
        outcomes[
            how,
            "finished before the kill"
            if returncode == 0
            else "killed, its write committed"
            if ledger.committed_unacked > before
            else "killed, its write not stored",
        ] += 1
    check_after_kill(vault, ledger, None, full=True, rng=rng)
    result = subprocess.run(
        [sys.executable, "-m", "bsecrets", "ls"],
        capture_output=True,
        cwd=vault,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    elapsed = time.monotonic() - started
    print(
        f"\n{CLI_KILLS} 'bsecrets put' processes SIGKILLed in {elapsed:.1f} s: "
        f"{dict(outcomes)}; WAL with frames after its last commit: {ledger.torn_wal}"
    )
    killed = sum(n for (_, outcome), n in outcomes.items() if outcome.startswith("killed"))
    assert killed >= CLI_KILLS // 2, outcomes
