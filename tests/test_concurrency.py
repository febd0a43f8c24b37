"""Concurrent writers (K4): 8 processes x 100 puts at once, and check-and-set races.

Every writer is a real process. They unlock with one session token, wait at a
start line (a file the test creates once all of them are ready), then write
together. Afterwards: every process exited 0 with nothing on stderr, no version
number was given twice, none is missing, and every acknowledged value reads
back exactly.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers.cli import invoke
from helpers.values import PASSPHRASE

from bsecrets.config.loader import load_profile
from bsecrets.services.manager import SecretsManager
from bsecrets.vaultfile.credentials import Credentials

pytestmark = pytest.mark.slow

WRITER = Path(__file__).parent / "scripts" / "writer.py"
PROCESSES = 8
PUTS = 100
TIMEOUT_S = 120


def session_env() -> dict[str, str]:
    """The environment of a child: a session token instead of the passphrase."""
    out = invoke(["unlock", "--ttl", "10m"]).stdout.strip()
    assert out.startswith("export BSECRETS_SESSION="), out
    env = dict(os.environ)
    env.pop("BSECRETS_PASSPHRASE", None)
    env["BSECRETS_SESSION"] = out.split("=", 1)[1]
    return env


def start_together(
    root: Path, argvs: list[list[str]], env: dict[str, str]
) -> list[tuple[int, str, str]]:
    """Start every writer, wait until all are ready, open the start line, collect them."""
    ready, go = root / "ready", root / "go"
    ready.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WRITER), *argv, "--ready", str(ready), "--go", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=root,
        )
        for argv in argvs
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(ready.glob("[0-9]*"))) < len(procs):
            assert time.monotonic() < deadline, "the writers did not get ready"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        go.touch()
        results = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=TIMEOUT_S)
            results.append((p.returncode, stdout.decode(), stderr.decode()))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


def manager(root: Path) -> SecretsManager:
    return SecretsManager(load_profile(root / "bsecrets.yaml"), Credentials(passphrase=PASSPHRASE))


def test_eight_processes_put_at_once(vault: Path) -> None:
    env = session_env()
    profile = str(vault / "bsecrets.yaml")
    started = time.monotonic()
    results = start_together(
        vault,
        [
            ["cli", "--profile", profile, "--id", str(i), "--count", str(PUTS)]
            for i in range(PROCESSES)
        ],
        env,
    )
    elapsed = time.monotonic() - started
    acks: dict[str, dict[int, str]] = {}
    for code, stdout, stderr in results:
        assert code == 0, stderr
        for word in ("locked", "busy", "error", "traceback"):
            assert word not in stderr.lower(), stderr
        lines = stdout.splitlines()
        assert len(lines) == PUTS, stdout[-500:]
        for line in lines:
            _, name, version, value = line.split()
            versions = acks.setdefault(name, {})
            assert int(version) not in versions, f"{name} v{version} given twice"
            versions[int(version)] = value
    shared_writes = PROCESSES * ((PUTS + 1) // 2)
    assert sorted(acks["shared"]) == list(range(1, shared_writes + 1))
    for i in range(PROCESSES):
        assert sorted(acks[f"own/{i}"]) == list(range(1, PUTS // 2 + 1))
    # the versions of 'shared' interleave writers: they really wrote at the same time
    by_version = [acks["shared"][v].split("-")[0] for v in sorted(acks["shared"])]
    switches = sum(a != b for a, b in itertools.pairwise(by_version))
    print(
        f"\n{PROCESSES} processes x {PUTS} puts in {elapsed:.1f} s; 'shared' changed hands "
        f"{switches} times over {shared_writes} versions"
    )
    assert switches >= PROCESSES * 4, by_version

    m = manager(vault)
    try:
        for name, versions in acks.items():
            history = m.history("dev", name)
            assert [h.version for h in history] == sorted(versions), name
            for version, value in versions.items():
                assert m.get("dev", name, version).value == value.encode(), (name, version)
        listing = {s.name: s.version for s in m.list_secrets("dev")}
        assert listing == {name: max(versions) for name, versions in acks.items()}
    finally:
        m.close()


def test_check_and_set_writers_race_in_process(vault: Path) -> None:
    """6 processes race with --if-version on one name up to v100: one winner per version."""
    env = session_env()
    profile = str(vault / "bsecrets.yaml")
    target = 100
    results = start_together(
        vault,
        [
            [
                "cas",
                "--profile",
                profile,
                "--id",
                str(i),
                "--count",
                "2000",
                "--target",
                str(target),
            ]
            for i in range(6)
        ],
        env,
    )
    winners: dict[int, str] = {}
    conflicts: Counter[int] = Counter()
    for code, stdout, stderr in results:
        assert code == 0 and stderr == "", stderr
        for line in stdout.splitlines():
            tag, first, second = line.split()
            if tag == "W":
                assert int(first) not in winners, f"version {first} won twice"
                winners[int(first)] = second
            else:
                conflicts[int(second)] += 1
    assert sorted(winners) == list(range(1, target + 1))
    assert set(conflicts) <= {7}
    print(f"\ncheck-and-set race: {target} versions, {sum(conflicts.values())} conflicts (exit 7)")
    assert conflicts[7] > 0, "no writer ever lost a race: they did not run at the same time"
    m = manager(vault)
    try:
        for version, value in winners.items():
            assert m.get("dev", "race", version).value == value.encode()
    finally:
        m.close()


def test_check_and_set_commands_race(vault: Path) -> None:
    """`bsecrets put race --if-version N` from 5 processes at once, 3 rounds: exactly one
    exits 0, the others exit 7 with one error line and a hint, and the value is the winner's."""
    env = session_env()
    assert invoke(["put", "race"], input="v1").exit_code == 0
    for round_no in range(1, 4):
        procs = []
        for i in range(5):
            value_file = vault / f"value-{i}"
            value_file.write_text(f"round{round_no}-p{i}")
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bsecrets",
                        "put",
                        "race",
                        "--if-version",
                        str(round_no),
                        "--from-file",
                        str(value_file),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    cwd=vault,
                )
            )
        outcomes = []
        for i, p in enumerate(procs):
            try:
                _, stderr = p.communicate(timeout=TIMEOUT_S)
            finally:
                if p.poll() is None:
                    p.kill()
            outcomes.append((p.returncode, i, stderr.decode()))
        winners = [i for code, i, _ in outcomes if code == 0]
        assert len(winners) == 1, outcomes
        for code, _, stderr in outcomes:
            if code == 0:
                continue
            assert code == 7, stderr
            errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
            assert len(errors) == 1 and "Traceback" not in stderr, stderr
            assert f"version {round_no + 1}, not {round_no}" in errors[0], stderr
            assert "hint: " in stderr
        got = invoke(["get", "race", "--version", str(round_no + 1)])
        assert got.stdout == f"round{round_no}-p{winners[0]}\n"
    assert invoke(["history", "race"]).stdout.count("\nv") == 4
