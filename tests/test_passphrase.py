"""``bsecrets passphrase change`` (services/passphrase.py): the owner's or a person
principal's key under a new passphrase, proven by the current one (never a session),
in one transaction with its audit event; the old passphrase opens nothing afterwards.

The kill campaign is small on purpose (KILLS): the change is one SQLite transaction (a
key-wrap row replaced and its event), and SQLite's atomic commit under SIGKILL is what
tests/test_crash.py exercises at length (100 forked writers and 16 CLI processes). Here
the kills check our part: that nothing of the change is written outside that
transaction, so a process killed anywhere, from start-up to exit, leaves exactly one of
the two passphrases working.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest
from helpers.cli import Result, invoke, run_on_tty
from helpers.file_keyring import FileKeyring, file_keyring  # noqa: F401
from helpers.values import PASSPHRASE

from bsecrets.config.loader import load_profile
from bsecrets.errors import Conflict
from bsecrets.services import passphrase
from bsecrets.services.manager import SecretsManager
from bsecrets.vaultfile.credentials import Credentials

NEW = "a new passphrase 7q"
KILLS = 8
SEED = 8128


def run(args: list[str], **env: str | None) -> Result:
    return invoke(args, env=env or None)  # type: ignore[arg-type]


def ok(args: list[str], input: str | None = None, **env: str | None) -> str:
    result = invoke(args, input=input, env=env or None)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.stderr
    return result.stdout


def refused(result: Result, code: int, needle: str) -> None:
    lines = result.stderr.splitlines()
    assert result.exit_code == code, result.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert len(lines) == 2 and lines[1].startswith("hint: "), result.stderr


def wrap_row(work: Path, principal: str = "owner") -> tuple[str, bytes]:
    with sqlite3.connect(work / ".bsecrets" / "vault.db") as db:
        row = db.execute(
            "SELECT params, wrapped FROM key_wraps WHERE principal_id = ? AND method = ?",
            (principal, "passphrase"),
        ).fetchone()
    db.close()
    return str(row[0]), bytes(row[1])


def opens(passphrase_: str, *args: str) -> bool:
    """Whether ``passphrase_`` opens the vault (reading dev's secret a); else exit 4."""
    result = run([*args, "get", "a"], BSECRETS_PASSPHRASE=passphrase_, BSECRETS_SESSION=None)
    assert result.exit_code in (0, 4), result.stderr
    return result.exit_code == 0


def test_the_owner_gets_a_new_passphrase(vault: Path) -> None:
    ok(["put", "a"], "value-a")
    ok(["put", "b", "-e", "prod"], "value-b")
    session = ok(["unlock"]).split("=", 1)[1].strip()
    before = wrap_row(vault)
    done = json.loads(ok(["passphrase", "change", "--json"], BSECRETS_NEW_PASSPHRASE=NEW))
    assert done == {"principal": "owner", "proved_by": "passphrase", "keyring": False,
                    "kdf": {"memory_kib": 1024, "iterations": 1, "lanes": 1}}  # fmt: skip
    refused(run(["get", "a"]), 4, "wrong passphrase")  # the old one opens nothing
    assert ok(["get", "a"], BSECRETS_PASSPHRASE=NEW) == "value-a\n"
    assert ok(["get", "b", "-e", "prod"], BSECRETS_PASSPHRASE=NEW) == "value-b\n"
    ok(["verify"], BSECRETS_PASSPHRASE=NEW)
    after = wrap_row(vault)  # the same key under a fresh salt
    assert json.loads(after[0])["salt"] != json.loads(before[0])["salt"]
    assert after[1] != before[1]
    # a session started before carries its own copy of the key: it keeps working
    assert ok(["get", "a"], BSECRETS_SESSION=session, BSECRETS_PASSPHRASE=None) == "value-a\n"
    events = json.loads(
        ok(["audit", "log", "--json", "--action", "passphrase.change"], BSECRETS_PASSPHRASE=NEW)
    )
    details = {"principal": "owner", "proved_by": "passphrase", "kdf": done["kdf"]}
    assert [(e["outcome"], e["details"]) for e in events] == [("ok", details)]
    exported = ok(["audit", "export", "--format", "jsonl"], BSECRETS_PASSPHRASE=NEW)
    assert NEW not in exported and PASSPHRASE not in exported


def test_a_principal_changes_its_own_passphrase(vault: Path) -> None:
    old, new = "alice-pass-123", "alice's new one 55"
    ok(["put", "a"], "value-a")
    ok(["access", "principal", "add", "alice"], BSECRETS_NEW_PASSPHRASE=old)
    ok(["access", "grant", "alice", "-e", "dev", "--role", "read"])
    done = ok(["--as", "alice", "passphrase", "change"],
              BSECRETS_PASSPHRASE=old, BSECRETS_NEW_PASSPHRASE=new)  # fmt: skip
    assert done == ""  # the message is on stderr
    assert not opens(old, "--as", "alice")
    assert opens(new, "--as", "alice")  # its trust root came along: the policy verifies
    assert opens(PASSPHRASE)  # the owner's is untouched
    events = json.loads(ok(["audit", "log", "--json", "--action", "passphrase.change"]))
    assert [(e["actor"]["principal"], e["outcome"]) for e in events] == [("alice", "ok")]


def test_the_same_passphrase_in_another_unicode_form_is_not_new(vault: Path) -> None:
    ok(["put", "a"], "value-a")
    composed = "café crème brûlée"
    decomposed = unicodedata.normalize("NFD", composed)
    ok(["passphrase", "change"], BSECRETS_NEW_PASSPHRASE=decomposed)
    assert opens(composed)  # normalised to NFC before the key derivation, as init does
    refused(run(["passphrase", "change"], BSECRETS_PASSPHRASE=composed,
                BSECRETS_NEW_PASSPHRASE=decomposed), 2, "is the current one")  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "code", "needle"),
    [
        ([], {"BSECRETS_PASSPHRASE": "a wrong guess 12"}, 4, "wrong passphrase"),
        ([], {"BSECRETS_NEW_PASSPHRASE": " " * 12}, 2, "only white space"),
        ([], {"BSECRETS_NEW_PASSPHRASE": ""}, 2, "only white space"),
        ([], {"BSECRETS_NEW_PASSPHRASE": "short"}, 2, "shorter than 8"),
        ([], {"BSECRETS_NEW_PASSPHRASE": PASSPHRASE}, 2, "is the current one"),
        ([], {}, 2, "no new passphrase"),  # no terminal to ask
        (["--as", "nobody"], {}, 3, "principal 'nobody' does not exist"),
    ],
    ids=["wrong-current", "blank", "empty", "short", "same", "no-terminal", "unknown-principal"],
)
def test_bad_input_changes_nothing(
    vault: Path, args: list[str], env: dict[str, str], code: int, needle: str
) -> None:
    ok(["put", "a"], "value-a")
    before = wrap_row(vault)
    if "BSECRETS_NEW_PASSPHRASE" not in env and code != 2:
        env = {**env, "BSECRETS_NEW_PASSPHRASE": NEW}
    refused(run([*args, "passphrase", "change"], **env), code, needle)
    assert wrap_row(vault) == before and opens(PASSPHRASE)


def test_a_session_is_not_enough(vault: Path) -> None:
    session = ok(["unlock"]).split("=", 1)[1].strip()
    refused(run(["passphrase", "change"], BSECRETS_PASSPHRASE=None, BSECRETS_SESSION=session,
                BSECRETS_NEW_PASSPHRASE=NEW), 4, "a session is not enough")  # fmt: skip
    events = json.loads(ok(["audit", "log", "--json", "--action", "passphrase.change"]))
    assert [e["outcome"] for e in events] == ["denied"]


def test_a_key_made_elsewhere_or_a_token_has_no_passphrase(vault: Path, tmp_path: Path) -> None:
    ok(["put", "a"], "value-a")
    key = tmp_path / "build.key"
    ok(["access", "keygen", "-o", str(key)])
    ok(["access", "principal", "add", "build", "--kind", "machine", "--public-key", f"{key}.pub"])
    result = run(["--as", "build", "passphrase", "change"], BSECRETS_KEY_FILE=str(key),
                 BSECRETS_PASSPHRASE=None, BSECRETS_NEW_PASSPHRASE=NEW)  # fmt: skip
    refused(result, 2, "unlocks with its key file")
    token = json.loads(ok(["token", "issue", "-e", "dev", "--json"]))["token"]
    result = run(["passphrase", "change"], BSECRETS_TOKEN=token, BSECRETS_NEW_PASSPHRASE=NEW)
    refused(result, 2, "a pipeline token has no passphrase")
    assert opens(PASSPHRASE)


def test_on_a_terminal(vault: Path) -> None:
    """The current passphrase asked for, then the new one twice."""
    ok(["put", "a"], "value-a")
    env = {k: v for k, v in os.environ.items() if k != "BSECRETS_PASSPHRASE"}
    argv = ["passphrase", "change"]
    code, screen = run_on_tty(argv, [PASSPHRASE, NEW, NEW + "x"], env)
    assert code == 2 and "error: the passphrases differ" in screen, screen
    code, screen = run_on_tty(argv, [PASSPHRASE, PASSPHRASE, PASSPHRASE], env)
    assert code == 2 and "error: the new passphrase is the current one" in screen, screen
    assert opens(PASSPHRASE)
    code, screen = run_on_tty(argv, [PASSPHRASE, NEW, NEW], env)
    assert code == 0 and "Vault passphrase: " in screen and "New passphrase (again): " in screen
    assert opens(NEW) and not opens(PASSPHRASE)


def test_the_keyring_proves_it_and_stays(
    isolated: Path,
    file_keyring: FileKeyring,  # noqa: F811
) -> None:
    """A vault made with --keyring and a passphrase: the keyring is proof enough (the
    lost-passphrase runbook); the same passphrase again is found by trying it."""
    ok(["init", "--keyring"], BSECRETS_PASSPHRASE=PASSPHRASE)
    ok(["put", "a"], "value-a")
    refused(run(["passphrase", "change"], BSECRETS_NEW_PASSPHRASE=PASSPHRASE), 2, "current one")
    done = json.loads(ok(["passphrase", "change", "--json"], BSECRETS_NEW_PASSPHRASE=NEW))
    assert (done["proved_by"], done["keyring"]) == ("keyring", True)
    assert opens(NEW) and not opens(PASSPHRASE)
    assert ok(["get", "a"]) == "value-a\n"  # the keyring's key still opens it


def test_never_weaker_than_the_stored_parameters(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vault made with the real Argon2id parameters keeps them even where the test
    suite's weaker set is allowed (and so would be the fresh default)."""
    monkeypatch.delenv("BSECRETS_INSECURE_TEST_KDF")
    ok(["init"], BSECRETS_PASSPHRASE=PASSPHRASE)
    monkeypatch.setenv("BSECRETS_INSECURE_TEST_KDF", "1")
    done = json.loads(ok(["passphrase", "change", "--json"],
                         BSECRETS_PASSPHRASE=PASSPHRASE, BSECRETS_NEW_PASSPHRASE=NEW))  # fmt: skip
    assert done["kdf"] == {"memory_kib": 65536, "iterations": 3, "lanes": 4}
    stored = json.loads(wrap_row(isolated)[0])
    assert (stored["memory_kib"], stored["iterations"], stored["lanes"]) == (65536, 3, 4)


def test_a_change_made_meanwhile_is_a_conflict(vault: Path) -> None:
    """Another command changes the passphrase between this one's proof and its write:
    nothing is written, and the other's passphrase stays in force."""
    other = "the other command's one 3"
    manager = SecretsManager(load_profile(vault / "bsecrets.yaml"),
                             Credentials(passphrase=PASSPHRASE))  # fmt: skip

    def meanwhile() -> str:
        ok(["passphrase", "change"], BSECRETS_NEW_PASSPHRASE=other)
        return NEW

    ok(["put", "a"], "value-a")
    try:
        with pytest.raises(Conflict, match="changed meanwhile"):
            passphrase.change(manager, meanwhile)
    finally:
        manager.close()
    assert opens(other) and not opens(NEW) and not opens(PASSPHRASE)


def test_a_kill_at_any_point_leaves_one_passphrase_working(vault: Path) -> None:
    """KILLS ``passphrase change`` processes SIGKILLed at seeded random moments, from
    start-up to past a whole run: after each, exactly one of the old and the new
    passphrase opens the vault (the next change starts from it)."""
    rng = random.Random(SEED)
    ok(["put", "a"], "value-a")
    argv = [sys.executable, "-m", "bsecrets", "passphrase", "change"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}

    def environ(current: str, new: str) -> dict[str, str]:
        return {**os.environ, "BSECRETS_PASSPHRASE": current, "BSECRETS_NEW_PASSPHRASE": new}

    # Timed only to aim the kills (never asserted on): start-up, and a whole change.
    start = time.monotonic()
    subprocess.run([*argv[:3], "get", "a"], env=os.environ, check=True, **quiet)
    startup = time.monotonic() - start
    current, start = "whole run passphrase 0", time.monotonic()
    subprocess.run(argv, env=environ(PASSPHRASE, current), check=True, **quiet)
    whole = time.monotonic() - start
    landed = {"old": 0, "new": 0}
    for i in range(KILLS):
        new = f"campaign passphrase {SEED}-{i}"
        child = subprocess.Popen(argv, env=environ(current, new), start_new_session=True,
                                 **quiet)  # fmt: skip
        time.sleep(rng.uniform(0.6 * startup, 1.05 * max(whole, startup)))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        old_opens, new_opens = opens(current), opens(new)
        assert old_opens != new_opens, (i, old_opens, new_opens)  # one, never neither
        landed["new" if new_opens else "old"] += 1
        current = new if new_opens else current
    assert sum(landed.values()) == KILLS
    assert ok(["get", "a"], BSECRETS_PASSPHRASE=current) == "value-a\n"
    ok(["verify"], BSECRETS_PASSPHRASE=current)
