"""exec --watch (#21 point 3): bsecrets re-reads what the child got, and on a change
restarts it or sends it a signal; the change is one audited event naming the secrets.
Real bsecrets processes and real children; the polls in-process where what is
checked is what a poll writes (no clock: the tests wait for what the child logs,
with hang guards)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import assert_error, invoke, put_secret
from helpers.loopback_proxy import LoopbackProxy
from helpers.openbao_server import OpenBao
from helpers.vault_env import unique_prefix, vault_env, write_profile

from bsecrets.backends.vault.transport import MAX_ATTEMPTS
from bsecrets.config.loader import load_profile
from bsecrets.services.exec_env import Request, prepare
from bsecrets.services.exec_watch import Watch
from bsecrets.services.manager import SecretsManager
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.tokens import principal_named_by

PASSPHRASE_ENV = "BSECRETS_PASSPHRASE"
GUARD = 60.0  # seconds: a hang guard, never an expectation

# The child: logs "PID start VALUE" (DB_URL, or the mounted file's text), and
# "PID signal NAME [file text]" on SIGHUP / SIGUSR1; then waits for signals.
CHILD = r"""
import os, signal, sys
log = sys.argv[1]
def seen():
    mount = os.environ.get("BSECRETS_MOUNT")
    if mount:
        with open(mount) as f:
            return " ".join(f.read().split())
    return os.environ.get("DB_URL", "-")
def note(text):
    with open(log, "a") as f:
        f.write(f"{os.getpid()} {text}\n")
def on(signum, frame):
    note(f"signal {signal.Signals(signum).name} {seen()}")
for s in (signal.SIGHUP, signal.SIGUSR1):
    signal.signal(s, on)
print("child says", os.environ.get("DB_URL", "-"), flush=True)
note(f"start {seen()}")
while True:
    signal.pause()
"""


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def log_lines(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [line.split(" ", 2) for line in log.read_text().splitlines()]


def events(action: str = "exec") -> list[dict[str, Any]]:
    result = invoke(["audit", "log", "--action", action, "--json"])
    assert result.exit_code == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


class Watched:
    """A real ``bsecrets exec --watch`` with the logging child."""

    def __init__(
        self, root: Path, args: list[str], env: dict[str, str] | None = None, interval: str = "1s"
    ) -> None:
        self.log = root / "child.log"
        self.errors = root / "stderr.txt"  # a file: read while bsecrets runs
        with self.errors.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bsecrets", "exec", "--watch", "--interval", interval, *args,
                 "--", sys.executable, "-c", CHILD, str(self.log)],
                stdout=subprocess.PIPE, stderr=err, env=env or dict(os.environ),
            )  # fmt: skip

    def said(self, text: str) -> bool:
        return text in self.errors.read_text()

    def lines(self) -> list[list[str]]:
        return log_lines(self.log)

    def wait_lines(self, count: int) -> list[list[str]]:
        def enough() -> list[list[str]] | None:
            if self.proc.poll() is not None:
                raise AssertionError(self.errors.read_text())
            lines = self.lines()
            return lines if len(lines) >= count else None

        found: list[list[str]] = wait_for(enough, f"{count} lines")
        return found

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM to bsecrets: forwarded once, no restart; its exit code and output."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=GUARD)
        return self.proc.returncode, out.decode(), self.errors.read_text()


@pytest.fixture
def db(vault: Path) -> Path:
    put_secret("db/url", b"postgres://first-value")
    return vault


@pytest.fixture
def watched() -> Iterator[list[Watched]]:
    started: list[Watched] = []
    yield started
    for w in started:  # a failed test leaves nothing running
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()
        for line in w.lines():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line[0]), signal.SIGKILL)


def start(watched: list[Watched], root: Path, *args: str, **env: str) -> Watched:
    w = Watched(root, list(args), {**os.environ, **env} if env else None)
    watched.append(w)
    return w


# --- a change restarts the command -----------------------------------------------------


def test_a_change_restarts_the_command_with_the_new_value(db: Path, watched: list[Watched]) -> None:
    w = start(watched, db, "--only", "db/url")
    first = w.wait_lines(1)
    assert first[0][1:] == ["start", "postgres://first-value"]
    put_secret("db/url", b"postgres://second-value")
    lines = w.wait_lines(2)
    assert lines[1][1:] == ["start", "postgres://second-value"]
    assert lines[1][0] != lines[0][0]  # a new process
    code, out, err = w.stop()
    assert code == 128 + signal.SIGTERM, err  # forwarded; no restart after it
    assert len(w.lines()) == 2
    assert out.splitlines() == [  # unmasked: the children write to bsecrets' stdout
        "child says postgres://first-value", "child says postgres://second-value"
    ]  # fmt: skip
    changes = [e for e in events() if (e.get("details") or {}).get("watch")]
    assert [(e["env"], e["names"], e["details"]["watch"]) for e in changes] == [
        ("dev", ["db/url"], "restart")
    ]
    log = invoke(["audit", "log", "--json"]).stdout
    assert "second-value" not in log and "first-value" not in log


def test_the_new_value_is_masked_too(db: Path, watched: list[Watched]) -> None:
    w = start(watched, db, "--only", "db/url", "--mask")
    w.wait_lines(1)
    put_secret("db/url", b"postgres://second-value")
    w.wait_lines(2)
    _, out, _ = w.stop()
    assert out.count("child says [REDACTED]") == 2, out
    assert "value" not in out


def test_a_signal_instead_of_a_restart(db: Path, watched: list[Watched]) -> None:
    w = start(watched, db, "--only", "db/url", "--signal", "USR1")
    w.wait_lines(1)
    put_secret("db/url", b"postgres://second-value")
    lines = w.wait_lines(2)
    assert lines[1][0] == lines[0][0]  # the same process, told
    assert lines[1][1] == "signal" and lines[1][2].startswith("SIGUSR1")
    code, _, _ = w.stop()
    assert code == 128 + signal.SIGTERM
    change = [e for e in events() if (e.get("details") or {}).get("watch")]
    assert change[0]["details"]["watch"] == "SIGUSR1"


def test_a_signal_after_the_mount_holds_the_new_value(db: Path, watched: list[Watched]) -> None:
    mount = db / "app.env"
    w = start(watched, db, "--only", "db/url", "--mount", str(mount), "--signal", "HUP")
    first = w.wait_lines(1)
    assert first[0][1:] == ["start", "DB_URL=postgres://first-value"]
    put_secret("db/url", b"postgres://second-value")
    lines = w.wait_lines(2)
    assert lines[1] == [first[0][0], "signal", "SIGHUP DB_URL=postgres://second-value"]
    code, out, _ = w.stop()
    assert code == 128 + signal.SIGTERM
    assert out.splitlines() == ["child says -"]  # no secret in its environment
    assert not os.path.lexists(mount)


def test_a_secret_gone_keeps_the_command_running_and_says_so(
    db: Path, watched: list[Watched]
) -> None:
    w = start(watched, db, "--only", "db/url")
    w.wait_lines(1)
    assert invoke(["rm", "db/url", "--yes"]).exit_code == 0
    put_secret("db/url", b"postgres://back-again")
    lines = w.wait_lines(2)
    assert lines[1][1:] == ["start", "postgres://back-again"]
    code, _, err = w.stop()
    assert code == 128 + signal.SIGTERM
    assert "Traceback" not in err


def test_a_vault_outage_keeps_the_command_running_and_says_so(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao, watched: list[Watched]
) -> None:
    prefix = unique_prefix("watch")
    with LoopbackProxy(openbao.address) as proxy:
        write_profile(isolated, monkeypatch, {"staging": vault_env(proxy.address, prefix)})
        monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
        put_secret("db/url", b"postgres://first-value", env="staging")
        w = start(watched, isolated, "-e", "staging", "--only", "db/url")
        w.wait_lines(1)
        proxy.fail_next(*[503] * MAX_ATTEMPTS, method="GET", path="/v1/secret/")
        wait_for(lambda: w.said("could not be read again"), "the outage said")
        wait_for(lambda: w.said("can be read again"), "the recovery said")
        assert len(w.lines()) == 1  # the command ran on with the values it had
        put_secret("db/url", b"postgres://second-value", env="staging")
        lines = w.wait_lines(2)
        assert lines[1][1:] == ["start", "postgres://second-value"]
        code, _, err = w.stop()
    assert code == 128 + signal.SIGTERM, err
    said = [line for line in err.splitlines() if "watch" in line]
    assert len(said) == 2 and "backend_unavailable" in said[0], err
    assert "value" not in err.replace("the values it has", "")


def test_a_remote_backend_is_not_asked_before_the_interval(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao, watched: list[Watched]
) -> None:
    """--interval 1h: after the read at start, nothing reaches the server while the
    test watches the proxy for a while (a loop that polled early would show)."""
    prefix = unique_prefix("watch")
    with LoopbackProxy(openbao.address) as proxy:
        write_profile(isolated, monkeypatch, {"staging": vault_env(proxy.address, prefix)})
        monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
        put_secret("db/url", b"postgres://first-value", env="staging")
        w = Watched(isolated, ["-e", "staging", "--only", "db/url"], interval="1h")
        watched.append(w)
        w.wait_lines(1)
        started = len(proxy.requests)
        time.sleep(2.5)  # not a timing assertion: time for an early poll to show
        assert proxy.requests[started:] == []
        code, _, err = w.stop()
    assert code == 128 + signal.SIGTERM, err


def test_a_read_only_token_can_watch(db: Path, watched: list[Watched]) -> None:
    issued = invoke(["token", "issue", "-e", "dev", "--role", "read", "--only", "db/*",
                     "--json"])  # fmt: skip
    assert issued.exit_code == 0, issued.stderr
    token = json.loads(issued.stdout)["token"]
    env = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    w = Watched(db, ["-e", "dev", "--only", "db/url"], {**env, "BSECRETS_TOKEN": token})
    watched.append(w)
    w.wait_lines(1)
    put_secret("db/url", b"postgres://second-value")  # the owner writes
    lines = w.wait_lines(2)
    assert lines[1][1:] == ["start", "postgres://second-value"]
    code, _, err = w.stop()
    assert code == 128 + signal.SIGTERM, err


# --- the polls, in-process -------------------------------------------------------------


def manager(root: Path) -> SecretsManager:
    return SecretsManager(
        load_profile(root / "bsecrets.yaml"), Credentials(passphrase=os.environ[PASSPHRASE_ENV])
    )


def test_a_poll_that_finds_nothing_new_writes_no_event(db: Path) -> None:
    m = manager(db)
    request = Request(["dev"], [], {"PATH": os.defpath}, only=["db/url"])
    said: list[str] = []
    watch = Watch(m, request, prepare(m, request), told="restart", warn=said.append)
    before = len(events())
    files = sorted((db / ".bsecrets").glob("vault.db*"))
    contents = [f.read_bytes() for f in files]
    for _ in range(5):
        assert watch.poll() is None
    # reads only: the polls wrote nothing to the vault (no event, no other change)
    assert [f.read_bytes() for f in files] == contents
    assert len(events()) == before and said == []
    put_secret("db/url", b"postgres://second-value")
    fresh = watch.poll()
    assert fresh is not None and fresh.injected == {"DB_URL": b"postgres://second-value"}
    assert watch.poll() is None  # told once
    assert len(events()) == before + 1
    m.close()


def test_an_unchanged_vault_file_is_not_read_again(db: Path) -> None:
    m = manager(db)
    request = Request(["dev"], [], {"PATH": os.defpath}, only=["db/url"])
    watch = Watch(m, request, prepare(m, request), told="restart", warn=print)
    assert watch.poll() is None  # the first poll reads
    statements: list[str] = []
    m.local_vault().store._conn.set_trace_callback(statements.append)
    for _ in range(3):
        assert watch.poll() is None
    read = [s for s in statements if "versions" in s or "secrets" in s]
    assert read == [] and "PRAGMA data_version" in statements, statements
    put_secret("db/url", b"postgres://second-value")  # another connection writes
    fresh = watch.poll()
    assert fresh is not None and fresh.injected == {"DB_URL": b"postgres://second-value"}
    assert [s for s in statements if "versions" in s]  # read again
    m.close()


def test_an_expired_token_stops_the_watch_without_a_write(db: Path) -> None:
    """The unchanged-file shortcut still checks access: with the manager's clock."""
    issued = json.loads(
        invoke(["token", "issue", "-e", "dev", "--role", "read", "--ttl", "1h", "--json"]).stdout
    )
    now = [datetime.now(UTC)]
    creds = Credentials(token=issued["token"], principal=principal_named_by(issued["token"]))
    m = SecretsManager(load_profile(db / "bsecrets.yaml"), creds, clock=lambda: now[0])
    request = Request(["dev"], [], {"PATH": os.defpath}, only=["db/url"])
    said: list[str] = []
    watch = Watch(m, request, prepare(m, request), told="restart", warn=said.append)
    assert watch.poll() is None and watch.poll() is None and not watch.stopped
    now[0] += timedelta(hours=2)
    assert watch.poll() is None and watch.stopped
    assert "expired" in said[0], said
    m.close()


def test_a_failed_poll_is_said_once_and_its_end_too(db: Path) -> None:
    m = manager(db)
    request = Request(["dev"], [], {"PATH": os.defpath}, only=["db/url"])
    said: list[str] = []
    watch = Watch(m, request, prepare(m, request), told="restart", warn=said.append)
    assert invoke(["rm", "db/url", "--yes"]).exit_code == 0
    assert watch.poll() is None and watch.poll() is None
    assert len(said) == 1 and "keeps the values it has" in said[0], said
    put_secret("db/url", b"postgres://first-value")  # the same value again
    assert watch.poll() is None
    assert said[1:] == ["watch: the secrets can be read again"]
    m.close()


def test_a_revoked_token_stops_the_watch_and_is_recorded(db: Path) -> None:
    issued = json.loads(invoke(["token", "issue", "-e", "dev", "--role", "read", "--json"]).stdout)
    creds = Credentials(token=issued["token"], principal=principal_named_by(issued["token"]))
    m = SecretsManager(load_profile(db / "bsecrets.yaml"), creds)
    request = Request(["dev"], [], {"PATH": os.defpath}, only=["db/url"])
    said: list[str] = []
    watch = Watch(m, request, prepare(m, request), told="restart", warn=said.append)
    assert watch.poll() is None and not watch.stopped
    revoked = invoke(["token", "revoke", issued["id"]])
    assert revoked.exit_code == 0, revoked.stderr
    put_secret("db/url", b"postgres://second-value")
    assert watch.poll() is None and watch.stopped
    assert len(said) == 1 and said[0].startswith("watch stopped: "), said
    # the refusal is recorded; a revoked token's event cannot be chained by it, so it
    # reaches the log through the intake, as audit.intake naming the principal
    rows = json.loads(invoke(["audit", "log", "--json"]).stdout)
    principal = principal_named_by(issued["token"])
    assert [
        r
        for r in rows
        if (r["action"] == "exec" and r["outcome"] == "denied")
        or (r["action"] == "audit.intake" and principal in (r.get("reason") or ""))
    ]
    assert watch.poll() is None and len(said) == 1  # no more polls
    m.close()


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--interval", "5s"], 2, "--watch"),
        (["--signal", "HUP"], 2, "--watch"),
        (["--watch", "--interval", "0s"], 2, "interval"),
        (["--watch", "--interval", "soon"], 2, "interval"),
        (["--watch", "--signal", "NOPE"], 2, "--signal"),
        (["--watch", "--signal", "KILL"], 2, "--signal"),
        (["--watch", "--signal", "HUP;rm"], 2, "--signal"),
    ],
)
def test_bad_watch_options(db: Path, args: list[str], code: int, needle: str) -> None:
    result = invoke(["exec", *args, "--", "/nonexistent/bsecrets-test-child"])
    assert_error(result, code, needle)
    assert not [e for e in events() if e["outcome"] == "ok"]  # refused before any read
