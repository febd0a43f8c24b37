"""exec with masking: the streaming redactor, and the supervised child (real
subprocesses): exit codes, signals forwarded, output redacted, a pty when the
parent's stdout is a terminal."""

from __future__ import annotations

import os
import pty
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.cli import put_secret, run_cli
from helpers.values import CANARY

from bsecrets.cli.commands.exec_child import want_mask
from bsecrets.errors import UsageError
from bsecrets.run.masking import REDACTED, Redactor, patterns

PY = sys.executable
SECRET = "s3cr3t-VALUE-éü✓-tail"


put = put_secret


def redact_in_pieces(values: list[bytes], text: bytes, cuts: list[int]) -> bytes:
    r = Redactor(values)
    out = b""
    last = 0
    for cut in [*cuts, len(text)]:
        out += r.feed(text[last:cut])
        last = cut
    return out + r.flush()


# --- the redactor ----------------------------------------------------------------


def test_redacts_every_occurrence() -> None:
    v = SECRET.encode()
    assert redact_in_pieces([v], b"a " + v + b" b " + v, []) == b"a " + REDACTED + b" b " + REDACTED


def test_value_split_at_every_point() -> None:
    v = SECRET.encode()
    text = b"before " + v + b" after\n"
    for i in range(len(text) + 1):
        assert redact_in_pieces([v], text, [i]) == b"before " + REDACTED + b" after\n", i


def test_value_split_into_single_bytes() -> None:
    v = SECRET.encode()
    text = b"x" + v + b"y"
    assert redact_in_pieces([v], text, list(range(1, len(text)))) == b"x" + REDACTED + b"y"


def test_longest_first_and_overlaps_leave_no_byte() -> None:
    short, long = b"abcd", b"abcdefgh"
    assert redact_in_pieces([short, long], b"-abcdefgh-abcd-", []) == (
        b"-" + REDACTED + b"-" + REDACTED + b"-"
    )
    # overlapping values: the union is redacted, no byte of either shows
    a, b = b"1234567", b"567890"
    out = redact_in_pieces([a, b], b"<1234567890>", [])
    assert out == b"<" + REDACTED + b">"
    for i in range(12):
        assert redact_in_pieces([a, b], b"<1234567890>", [i]) == out


def test_short_values_left_alone() -> None:
    assert patterns([b"abc", b"", "éé✓".encode()]) == []
    assert redact_in_pieces([b"abc"], b"abc abcd", []) == b"abc abcd"
    assert patterns([b"abcd"]) == [b"abcd"]


def test_multiline_value_and_its_lines() -> None:
    v = b"-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----"
    assert redact_in_pieces([v], b"k=" + v + b"\n", []) == b"k=" + REDACTED + b"\n"
    # a terminal turns \n into \r\n: each line is still caught
    crlf = v.replace(b"\n", b"\r\n")
    assert b"MIIEvQIBADANBg" not in redact_in_pieces([v], crlf, [5, 30])


def test_utf8_passes_through_and_non_utf8_too() -> None:
    v = "pässwörd✓".encode()
    text = "héllo ".encode() + v + b" \xff\xfe end"
    for i in range(len(text) + 1):
        assert redact_in_pieces([v], text, [i]) == "héllo ".encode() + REDACTED + b" \xff\xfe end"


def test_nothing_held_without_a_possible_start() -> None:
    r = Redactor([SECRET.encode()])
    assert r.feed(b"Password: ") == b"Password: "  # a prompt shows at once
    assert r.feed(b"xx s3cr") == b"xx "  # only a possible start is held
    assert r.feed(b"3t-VALUE-") == b""
    assert r.feed(b"nope") == b"s3cr3t-VALUE-nope"


def test_fuzz_streaming_equals_whole() -> None:
    rng = random.Random(4)
    alphabet = b"ab\n\xc3\xa9x"
    for _ in range(3000):
        values = [
            bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 7)))
            for _ in range(rng.randint(1, 3))
        ]
        text = b"".join(
            rng.choice([rng.choice(values), bytes(rng.choice(alphabet) for _ in range(3))])
            for _ in range(rng.randint(0, 8))
        )
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 5))))
        assert redact_in_pieces(values, text, cuts) == redact_in_pieces(values, text, [])


def test_repr_hides_values() -> None:
    assert SECRET not in repr(Redactor([SECRET.encode()]))


# --- when masking is on ------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "environ", "expected"),
    [
        (None, {}, False),
        (None, {"CI": "true"}, True),
        (None, {"CI": "1"}, True),
        (None, {"CI": "false"}, False),
        (None, {"CI": ""}, False),
        (None, {"CI": "true", "BSECRETS_MASK": "0"}, False),
        (None, {"BSECRETS_MASK": "1"}, True),
        (False, {"CI": "true", "BSECRETS_MASK": "1"}, False),
        (True, {"BSECRETS_MASK": "0"}, True),
    ],
)
def test_want_mask(flag: bool | None, environ: dict[str, str], expected: bool) -> None:
    assert want_mask(flag, environ) is expected


def test_bad_mask_setting(vault: Path) -> None:
    result = run_cli(["exec", "--", "true"], env={"BSECRETS_MASK": "yes"})
    assert result.returncode == 2
    assert result.stderr.startswith(b"error: BSECRETS_MASK must be 0 or 1")
    with pytest.raises(UsageError):
        want_mask(None, {"BSECRETS_MASK": "2"})


# --- the supervised child ------------------------------------------------------------


@pytest.fixture
def secret(vault: Path) -> bytes:
    put("token", SECRET.encode())
    return SECRET.encode()


def masked(args: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return run_cli(["exec", "--mask", "--", *args], **kw)  # type: ignore[arg-type]


def test_output_redacted_stdout_and_stderr(secret: bytes) -> None:
    result = masked(["sh", "-c", 'echo "out=$TOKEN"; echo "err=$TOKEN" >&2'])
    assert result.returncode == 0
    assert result.stdout == b"out=" + REDACTED + b"\n"
    assert result.stderr == b"err=" + REDACTED + b"\n"


def test_masking_on_by_default_in_ci(secret: bytes) -> None:
    result = run_cli(["exec", "--", "sh", "-c", "echo $TOKEN"], env={"CI": "true"})
    assert result.stdout == REDACTED + b"\n"
    result = run_cli(
        ["exec", "--", "sh", "-c", "echo $TOKEN"], env={"CI": "true", "BSECRETS_MASK": "0"}
    )
    assert result.stdout == secret + b"\n"
    result = run_cli(["exec", "--no-mask", "--", "sh", "-c", "echo $TOKEN"], env={"CI": "true"})
    assert result.stdout == secret + b"\n"


def test_value_split_by_the_pipe(secret: bytes) -> None:
    """The child writes half a value, flushes, waits, writes the rest: still redacted."""
    code = (
        "import os, sys, time\n"
        "v = os.environb[b'TOKEN']\n"
        "for stream in (sys.stdout.buffer, sys.stderr.buffer):\n"
        "    for half in (b'<' + v[:9], v[9:] + b'>\\n'):\n"
        "        stream.write(half); stream.flush(); time.sleep(0.3)\n"
    )
    result = masked([PY, "-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"<" + REDACTED + b">\n"
    assert result.stderr == b"<" + REDACTED + b">\n"


def test_large_output_with_values_across_chunks(secret: bytes) -> None:
    code = (
        "import os, sys\n"
        "v = os.environb[b'TOKEN']\n"
        "out = sys.stdout.buffer\n"
        "for i in range(20000):\n"
        "    out.write(b'x' * (i % 97) + v)\n"
    )
    result = masked([PY, "-c", code], timeout=120)
    assert result.returncode == 0
    assert secret not in result.stdout
    assert result.stdout.count(REDACTED) == 20000
    assert len(result.stdout) == sum(i % 97 for i in range(20000)) + 20000 * len(REDACTED)


def test_multiline_value_survives_masked_exec(vault: Path) -> None:
    value = b"line one\nline 'two'\n$(x) `y`\n"
    put("multi", value)
    code = "import os, sys; sys.stdout.buffer.write(str(os.environb[b'MULTI'] == %r).encode())"
    result = masked([PY, "-c", code % value])
    assert result.stdout == b"True"


@pytest.mark.parametrize("code", [0, 1, 42])
def test_exit_codes(secret: bytes, code: int) -> None:
    assert masked(["sh", "-c", f"exit {code}"]).returncode == code


def test_not_found_127(secret: bytes) -> None:
    result = masked(["no-such-command-xyz"])
    assert result.returncode == 127
    assert result.stderr.startswith(b"error: command not found: no-such-command-xyz\nhint:")


def test_not_executable_126(secret: bytes, vault: Path) -> None:
    script = vault / "s.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o600)
    result = masked([str(script)])
    assert result.returncode == 126
    assert result.stderr.startswith(b"error: cannot execute")


def test_death_by_sigkill_is_137(secret: bytes) -> None:
    assert masked(["sh", "-c", "kill -9 $$"]).returncode == 137


def test_death_by_sigterm_is_143(secret: bytes) -> None:
    assert masked(["sh", "-c", "kill -15 $$"]).returncode == 143


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [PY, "-m", "bsecrets", "exec", "--mask", "--", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the child is up and its trap is set
    assert line == b"ready\n", (line, proc.stderr.read() if proc.stderr else b"")
    return proc


TRAP = 'trap "echo trapped {sig} $TOKEN; exit 3" {sig}; echo ready; while :; do sleep 0.05; done'


@pytest.mark.parametrize("sig", ["TERM", "INT", "HUP", "QUIT", "USR1", "USR2"])
def test_signal_reaches_child_trap(secret: bytes, sig: str) -> None:
    proc = _start(["sh", "-c", TRAP.format(sig=sig)])
    proc.send_signal(getattr(signal, f"SIG{sig}"))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert out == f"trapped {sig} ".encode() + REDACTED + b"\n"


def test_signal_to_the_group_reaches_child_once(secret: bytes) -> None:
    """A terminal's Ctrl-C signals bsecrets' whole group; the child (own session) gets it once."""
    code = (
        "import signal, sys, time\n"
        "n = []\n"
        "signal.signal(signal.SIGINT, lambda *a: n.append(1))\n"
        "print('ready', flush=True)\n"
        "time.sleep(1.0)\n"
        "print(len(n), flush=True)\n"
    )
    proc = subprocess.Popen(
        [PY, "-m", "bsecrets", "exec", "--mask", "--", PY, "-c", code],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert out == b"1\n"
    assert proc.returncode == 0


def test_background_grandchild_does_not_hold_exec(secret: bytes) -> None:
    """exec returns when its child does, not when a grandchild that kept the output
    pipe open does: the grandchild sleeps 20 s, the hang guard (the subprocess
    timeout) gives up after 10 s, far above the fraction of a second it needs."""
    result = masked(["sh", "-c", "sleep 20 & echo started"], timeout=10)
    assert result.returncode == 0
    assert result.stdout == b"started\n"


def test_reader_gone_child_gets_sigpipe(secret: bytes) -> None:
    proc = subprocess.Popen(
        [PY, "-m", "bsecrets", "exec", "--mask", "--", "yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.read(10)
    proc.stdout.close()
    proc.wait(timeout=30)
    assert proc.returncode == 128 + signal.SIGPIPE


def test_unlock_variables_absent_masked(secret: bytes) -> None:
    result = masked(["env"], env={"BSECRETS_PASSPHRASE_FILE": "/nonexistent"})
    assert b"BSECRETS_" not in result.stdout.replace(b"BSECRETS_INSECURE_TEST_KDF", b"")


def test_pty_when_stdout_is_a_terminal(secret: bytes) -> None:
    """stdout a terminal: the child sees a terminal too, and its output is still redacted."""
    leader, follower = pty.openpty()
    script = 'if [ -t 1 ]; then echo "tty $TOKEN"; else echo "notty $TOKEN"; fi; echo e >&2'
    proc = subprocess.Popen(
        [PY, "-m", "bsecrets", "exec", "--mask", "--", "sh", "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 4096)
            except OSError:
                break
            if not data:
                break
            screen += data
        elif proc.poll() is not None:
            break
    os.close(leader)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert b"tty " + REDACTED in screen, screen
    assert b"notty" not in screen
    assert secret not in screen
    assert err == b"e\n"  # stderr not a terminal: a separate pipe


def test_canary_never_in_stderr_of_errors(vault: Path) -> None:
    put("token", CANARY.encode())
    result = masked(["no-such-command-xyz"])
    assert CANARY.encode() not in result.stderr
