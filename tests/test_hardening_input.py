"""Bad input that used to escape as "internal error" (OverflowError, ValueError,
UnicodeDecodeError), hang or eat memory, fixed as classes:

- every duration has a maximum (``--ttl``: 7 days; everything else: 36500 days),
  whatever its digits;
- every number that names a version or counts rows stops at SQLite's 64-bit
  maximum; ``--interval`` is a finite 0.1 to 3600 seconds;
- the passphrase file is read through one descriptor, at most 64 KiB + 1 bytes,
  must be UTF-8, and a regular file must be yours and private (pipes are fine);
- descriptions and tags over their limits are refused before anything is read.

Each case: the exit code from docs/cli.md, exactly one ``error:`` line and one
``hint:`` line, no traceback, and the vault file unchanged.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import Result, invoke, run_cli
from helpers.values import PASSPHRASE

from bsecrets.models import MAX_DESCRIPTION, MAX_TAGS

HUGE = "99999999999999999999"  # > 2**64
HUGER = "9" * 5000  # > Python's 4300-digit int() limit
INT64_MAX = str(2**63 - 1)
PASSPHRASE_FILE_LIMIT = 64 * 1024  # docs/cli.md


def vault_state(root: Path) -> tuple[str, list[str]]:
    folder = root / ".bsecrets"
    db = hashlib.sha256((folder / "vault.db").read_bytes()).hexdigest()
    return db, sorted(p.name for p in folder.iterdir())


def assert_refused(result: Result | subprocess.CompletedProcess[bytes], code: int, *needles: str):
    """Exit ``code``, one ``error:`` line naming ``needles``, one ``hint:`` line."""
    if isinstance(result, subprocess.CompletedProcess):
        rc, stderr = result.returncode, result.stderr.decode(errors="replace")
    else:
        rc, stderr = result.exit_code, result.stderr
    lines = stderr.splitlines()
    assert rc == code, stderr
    assert [line for line in lines if line.startswith("error: ")] == lines[:1], stderr
    assert sum(line.startswith("hint: ") for line in lines) == 1, stderr
    assert len(lines) == 2, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    for needle in needles:
        assert needle in lines[0], stderr


@pytest.fixture
def one_secret(vault: Path) -> Path:
    assert invoke(["put", "a"], input="old").exit_code == 0
    return vault


# --- durations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["unlock", "--ttl", f"{HUGE}d"], ["--ttl", "7 days"]),
        (["unlock", "--ttl", f"{HUGER}s"], ["--ttl", "7 days"]),
        (["unlock", "--ttl", f"1h{HUGE}w"], ["--ttl", "7 days"]),
        (["audit", "log", "--since", f"{HUGE}d"], ["--since", "36500 days"]),
        (["audit", "log", "--since", "36501d"], ["--since", "36500 days"]),
        (["audit", "log", "--until", f"{HUGER}m"], ["--until", "36500 days"]),
        (["audit", "search", "x", "--since", f"{HUGE}w"], ["--since", "36500 days"]),
        (["audit", "export", "--since", f"{HUGE}h"], ["--since", "36500 days"]),
        (["audit", "report", "--since", f"{HUGE}d"], ["--since", "36500 days"]),
        (["audit", "archive", "--before", f"{HUGE}d", "--to", "x"], ["--before", "36500 days"]),
        (["audit", "log", "--until", "0001-01-01T00:00:00+01:00"], ["--until", "out of range"]),
        (["audit", "log", "--since", "9999-12-31T23:59:59-01:00"], ["--since", "out of range"]),
    ],
)
def test_duration_past_its_maximum(one_secret: Path, args: list[str], needles: list[str]) -> None:
    before = vault_state(one_secret)
    assert_refused(invoke(args), 2, *needles)
    assert vault_state(one_secret) == before


def test_durations_at_the_maximum_still_work(one_secret: Path) -> None:
    assert invoke(["audit", "log", "--since", "36500d"]).exit_code == 0
    assert invoke(["audit", "log", "--since", "5214w2d"]).exit_code == 0  # 36500 days
    assert_refused(invoke(["audit", "log", "--since", "5214w3d"]), 2, "36500 days")


@pytest.mark.parametrize("retention", [f"{HUGE}d", "36501d", f"{HUGER}s"])
def test_retention_past_the_maximum_is_a_profile_error(one_secret: Path, retention: str) -> None:
    profile = one_secret / "bsecrets.yaml"
    profile.write_text(profile.read_text() + f"audit:\n  retention: {retention}\n")
    before = vault_state(one_secret)
    result = invoke(["audit", "archive", "--apply-retention"])
    assert_refused(result, 2, "bsecrets.yaml:", "audit.retention", "36500 days")
    assert vault_state(one_secret) == before


def test_report_criteria_age_past_the_maximum(one_secret: Path) -> None:
    criteria = one_secret / "criteria.yaml"
    criteria.write_text(f"max_secret_age: {HUGE}d\n")
    result = invoke(["audit", "report", "--criteria", str(criteria)])
    assert result.exit_code == 2, result.stderr
    assert "36500 days" in result.stderr and "internal error" not in result.stderr


# --- numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("number", [HUGE, HUGER, str(2**63)])
@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["get", "a", "--version"], "--version"),
        (["rollback", "a", "--to"], "--to"),
        (["put", "a", "--value", "new", "--if-version"], "--if-version"),
        (["audit", "log", "--limit"], "--limit"),
        (["audit", "search", "put", "--limit"], "--limit"),
        (["audit", "tail", "--lines"], "--lines"),
    ],
)
def test_number_past_64_bits(one_secret: Path, args: list[str], option: str, number: str) -> None:
    before = vault_state(one_secret)
    if args[:2] == ["audit", "tail"]:  # would follow forever if accepted
        result: Result | subprocess.CompletedProcess[bytes] = run_cli([*args, number], timeout=60)
    else:
        result = invoke([*args, number])
    assert_refused(result, 2, option, INT64_MAX)
    assert vault_state(one_secret) == before


def test_number_at_64_bits_is_an_ordinary_answer(one_secret: Path) -> None:
    assert_refused(invoke(["get", "a", "--version", INT64_MAX]), 3, "no version")
    assert_refused(invoke(["rollback", "a", "--to", INT64_MAX]), 3, "no version")
    result = invoke(["put", "a", "--if-version", INT64_MAX], input="new")
    assert_refused(result, 7, "version 1")
    assert invoke(["audit", "log", "--limit", INT64_MAX]).exit_code == 0
    assert_refused(invoke(["get", "a", "--version", str(2**63)]), 2, "--version")


@pytest.mark.parametrize("interval", ["nan", "inf", "-inf", "1e308", "0", "0.05", "3601"])
def test_tail_interval_out_of_range(one_secret: Path, interval: str) -> None:
    result = run_cli(["audit", "tail", "--interval", interval], timeout=60)
    assert_refused(result, 2, "--interval", "3600")


# --- description and tags -----------------------------------------------------------


def test_description_over_its_limit(one_secret: Path) -> None:
    before = vault_state(one_secret)
    result = invoke(["put", "b", "--description", "d" * (MAX_DESCRIPTION + 1)], input="v")
    assert_refused(result, 2, "description", f"{MAX_DESCRIPTION:,}")
    assert vault_state(one_secret) == before
    assert invoke(["get", "b"]).exit_code == 3
    at_limit = "é" * MAX_DESCRIPTION  # characters, not bytes
    assert invoke(["put", "b", "--description", at_limit], input="v").exit_code == 0
    assert invoke(["get", "b", "--json"]).stdout.count("\\u00e9") == MAX_DESCRIPTION


@pytest.mark.parametrize(
    ("tags", "needle"),
    [
        ([f"k{i}=v" for i in range(MAX_TAGS + 1)], f"at most {MAX_TAGS}"),
        (["k=" + "v" * 257], "256"),
        (["bad key=v"], "invalid tag key"),
    ],
)
def test_tags_over_their_limits(one_secret: Path, tags: list[str], needle: str) -> None:
    before = vault_state(one_secret)
    args = ["put", "b"]
    for tag in tags:
        args += ["--tag", tag]
    assert_refused(invoke(args, input="v"), 2, needle)
    assert vault_state(one_secret) == before


# --- the passphrase file --------------------------------------------------------------


def _no_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSECRETS_PASSPHRASE", raising=False)


def _private_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _bounded_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """The CLI as a process with 1 GiB of address space and a time limit: reading
    /dev/zero whole (the old behaviour) ends in MemoryError, not a dead machine."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(
        [sys.executable, "-m", "bsecrets", *args],
        capture_output=True,
        env={**os.environ, **env},
        timeout=30,  # it needs well under a second
        preexec_fn=limit_memory,
        check=False,
    )


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_passphrase_file_endless_device(
    one_secret: Path, monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    _no_passphrase(monkeypatch)
    before = vault_state(one_secret)
    result = _bounded_cli(["get", "a"], {"BSECRETS_PASSPHRASE_FILE": device})
    assert_refused(result, 2, "BSECRETS_PASSPHRASE_FILE", device, "64 KiB")
    assert vault_state(one_secret) == before


def test_passphrase_file_too_big(one_secret: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_passphrase(monkeypatch)
    big = _private_file(one_secret / "pass", PASSPHRASE.encode() + b"\n" * PASSPHRASE_FILE_LIMIT)
    monkeypatch.setenv("BSECRETS_PASSPHRASE_FILE", str(big))
    assert_refused(invoke(["get", "a"]), 2, "64 KiB")


def test_passphrase_file_not_utf8(one_secret: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_passphrase(monkeypatch)
    latin1 = _private_file(one_secret / "pass", "pässphrase".encode("latin-1"))
    monkeypatch.setenv("BSECRETS_PASSPHRASE_FILE", str(latin1))
    before = vault_state(one_secret)
    assert_refused(invoke(["get", "a"]), 2, "UTF-8")
    assert vault_state(one_secret) == before


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o601])
def test_passphrase_file_others_can_reach(
    one_secret: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    _no_passphrase(monkeypatch)
    path = _private_file(one_secret / "pass", PASSPHRASE.encode() + b"\n")
    path.chmod(mode)
    monkeypatch.setenv("BSECRETS_PASSPHRASE_FILE", str(path))
    before = vault_state(one_secret)
    assert_refused(invoke(["get", "a"]), 4, "other users", f"{mode:o}")
    assert vault_state(one_secret) == before
    path.chmod(0o600)
    assert invoke(["get", "a"]).stdout == "old\n"


def test_passphrase_file_of_another_user(one_secret: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    _no_passphrase(monkeypatch)
    path = _private_file(one_secret / "pass", PASSPHRASE.encode() + b"\n")
    os.chown(path, 65534, 65534)
    monkeypatch.setenv("BSECRETS_PASSPHRASE_FILE", str(path))
    assert_refused(invoke(["get", "a"]), 4, "another user")


def _bash_with_pipe(one_secret: Path, producer: str) -> subprocess.CompletedProcess[bytes]:
    """``BSECRETS_PASSPHRASE_FILE=<(PRODUCER) bsecrets get a`` in a real bash."""
    env = {k: v for k, v in os.environ.items() if k != "BSECRETS_PASSPHRASE"}
    env["PW"] = PASSPHRASE
    script = f'BSECRETS_PASSPHRASE_FILE=<({producer}) exec "$0" -m bsecrets get a'
    return subprocess.run(
        ["bash", "-c", script, sys.executable],
        capture_output=True,
        env=env,
        cwd=one_secret,
        timeout=60,
        check=False,
    )


def test_passphrase_from_process_substitution(one_secret: Path) -> None:
    """A pipe (/dev/fd/63) is not a regular file: no mode check, read as before."""
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    done = _bash_with_pipe(one_secret, 'printf "%s\\n" "$PW"')
    assert (done.returncode, done.stdout) == (0, b"old\n"), done.stderr.decode()


def test_passphrase_pipe_too_big(one_secret: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    before = vault_state(one_secret)
    done = _bash_with_pipe(one_secret, 'printf "%s" "$PW"; head -c 70000 /dev/zero')
    assert_refused(done, 2, "/dev/fd/", "64 KiB")
    assert vault_state(one_secret) == before
