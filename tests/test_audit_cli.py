"""`bsecrets audit ...` and the events every command leaves: what is recorded,
the filters, export, archive and retention, fail-closed, and every bad input of
the issue (one `error:` line, a `hint:`, the exit code of CLI.md)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.aws_env import write_profile
from helpers.cli import invoke, run_cli
from helpers.moto_server import REGION, MotoServer
from helpers.values import CANARY, PASSPHRASE

from bsecrets.audit.chain import canonical
from bsecrets.audit.local_log import LocalAuditLog
from bsecrets.timeutil import utcnow
from bsecrets.vaultfile.credentials import Credentials
from bsecrets.vaultfile.vault import LocalVault


def ok(args: list[str], input: str | None = None) -> str:
    result = invoke(args, input=input)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def events(*args: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(ok(["audit", "log", "--json", *args]))
    return [e for e in found if not e["action"].startswith("audit.")]


def assert_error(result: Any, code: int, *needles: str) -> list[str]:
    lines = result.stderr.splitlines()
    assert result.exit_code == code, result.stderr
    assert lines[0].startswith("error: ") and len(lines) == 2, result.stderr
    assert lines[1].startswith("hint: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return lines


def vault_db(work: Path) -> Path:
    return work / ".bsecrets" / "vault.db"


# --- what is recorded ------------------------------------------------------------


def test_every_operation_leaves_one_event_with_who_what_and_outcome(vault: Path) -> None:
    ok(["put", "db/password"], input=CANARY)
    ok(["put", "db/password", "--tag", "team=core"], input="second")
    ok(["get", "db/password"])
    assert invoke(["get", "nope"]).exit_code == 3
    ok(["ls"])
    ok(["history", "db/password"])
    ok(["rollback", "db/password", "--to", "1"])
    ok(["rm", "db/password"])
    ok(["restore", "db/password"])
    ok(["export", "-f", "json"])
    seen = events()
    assert [(e["action"], e.get("name"), e.get("version"), e["outcome"]) for e in seen] == [
        ("init", None, None, "ok"),
        ("put", "db/password", 1, "ok"),
        ("put", "db/password", 2, "ok"),
        ("get", "db/password", 2, "ok"),
        ("get", "nope", None, "not_found"),
        ("ls", None, None, "ok"),
        ("history", "db/password", None, "ok"),
        ("rollback", "db/password", 3, "ok"),
        ("rm", "db/password", None, "ok"),
        ("restore", "db/password", 3, "ok"),
        ("export", None, None, "ok"),
    ]
    assert seen[-1]["names"] == ["db/password"]
    assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)
    first = seen[1]
    assert first["env"] == "dev" and first["v"] == 1
    assert set(first["actor"]) == {"user", "principal", "host", "pid"}
    assert first["actor"]["principal"] == "owner" and first["actor"]["pid"] == os.getpid()
    assert len(first["request_id"]) == 16 and len(first["mac"]) == 64
    assert seen[4]["reason"] == "secret 'nope' not found in environment 'dev'"
    assert "ci" not in first
    raw = json.dumps(seen)
    assert CANARY not in raw and "second" not in raw


def test_exec_records_one_event_with_the_names_it_injects(vault: Path) -> None:
    ok(["put", "API_KEY"], input="k")
    ok(["put", "DB_URL"], input="u")
    result = run_cli(["exec", "--", sys.executable, "-c", "pass"])
    assert result.returncode == 0, result.stderr
    execs = events("--action", "exec")
    assert len(execs) == 1
    assert execs[0]["names"] == ["API_KEY", "DB_URL"] and execs[0]["outcome"] == "ok"
    assert events("--action", "get") == []  # one event for the exec, not one per secret
    kept = run_cli(
        ["exec", "--preserve-env", "API_KEY", "--", sys.executable, "-c", "pass"],
        env={"API_KEY": "inherited"},
    )
    assert kept.returncode == 0, kept.stderr
    assert events("--action", "exec")[-1]["names"] == ["DB_URL"]  # only what it injected
    ok(["put", "PATH"], input="/evil")
    refused = run_cli(["exec", "--only", "PATH", "--", sys.executable, "-c", "pass"])
    assert refused.returncode == 2 and b"protected variable PATH" in refused.stderr
    last = events("--action", "exec")[-1]  # read, refused, nothing injected: recorded
    assert (last["outcome"], last["names"]) == ("failed", ["PATH"]), last


def test_import_and_provision_are_one_operation_each(vault: Path) -> None:
    (vault / "in.env").write_text("A=1\nB=2\n")
    ok(["import", "in.env"])
    profile = vault / "bsecrets.yaml"
    profile.write_text(
        profile.read_text().replace(
            "  dev:\n    backend: local\n",
            "  dev:\n    backend: local\n    provision:\n      gen/token: hex:16\n",
        )
    )
    ok(["provision"])
    seen = [(e["action"], e.get("name"), e.get("names")) for e in events()[1:]]
    assert seen == [
        ("ls", None, None),
        ("put", "A", None),
        ("put", "B", None),
        ("import", None, ["A", "B"]),
        ("ls", None, None),
        ("put", "gen/token", None),
        ("provision", None, ["gen/token"]),
    ]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {
                "GITHUB_ACTIONS": "true",
                "GITHUB_WORKFLOW": "deploy",
                "GITHUB_RUN_ID": "4242",
                "GITHUB_JOB": "release",
                "GITHUB_SHA": "abc123",
                "GITHUB_REPOSITORY": "acme/shop",
            },
            {
                "provider": "github",
                "pipeline": "deploy",
                "run": "4242",
                "job": "release",
                "commit": "abc123",
                "repository": "acme/shop",
            },
        ),
        (
            {
                "GITLAB_CI": "true",
                "CI_PIPELINE_ID": "77",
                "CI_JOB_NAME": "deploy",
                "CI_COMMIT_SHA": "def456",
                "CI_PROJECT_PATH": "acme/shop",
            },
            {
                "provider": "gitlab",
                "pipeline": "77",
                "job": "deploy",
                "commit": "def456",
                "repository": "acme/shop",
            },
        ),
    ],
)
def test_ci_runs_are_named_in_the_event(
    vault: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: Any
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    ok(["put", "token"], input="t")
    assert events("--action", "put")[0]["ci"] == expected


def test_a_wrong_passphrase_is_recorded_when_the_vault_next_opens(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(["put", "a"], input="x")
    monkeypatch.setenv("BSECRETS_PASSPHRASE", "not the passphrase")
    assert invoke(["get", "a"]).exit_code == 4
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    denied = events("--outcome", "denied")
    assert [(e["action"], e["name"], e.get("late")) for e in denied] == [("get", "a", True)]
    assert denied[0]["reason"] == "wrong passphrase"
    assert invoke(["audit", "verify"]).exit_code == 0


def test_remote_operations_record_intent_and_outcome(
    vault: Path, aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = aws.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    write_profile(
        vault, region=REGION, prefix="audit/", kms_key_id=key_id, endpoint_url=aws.endpoint
    )
    ok(["put", "api", "-e", "prod"], input="remote-value")
    ok(["get", "api", "-e", "prod"])
    remote = events("--env", "prod")
    assert [(e["action"], e["outcome"]) for e in remote] == [
        ("put", "started"),
        ("put", "ok"),
        ("get", "started"),
        ("get", "ok"),
    ]
    assert remote[1]["version"] == 1
    # locked (no passphrase, no session): the events wait, sealed, for the next unlock
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    ok(["get", "api", "-e", "prod"])
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    late = [e for e in events("--env", "prod") if e.get("late")]
    assert [(e["action"], e["outcome"]) for e in late] == [("get", "started"), ("get", "ok")]


def test_no_local_vault_means_no_client_audit_log(
    isolated: Path, aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote-only profile that never ran init: the server's audit is the record;
    bsecrets says so instead of pretending."""
    key_id = aws.client("kms").create_key()["KeyMetadata"]["KeyId"]
    write_profile(
        isolated, region=REGION, prefix="noaudit/", kms_key_id=key_id, endpoint_url=aws.endpoint
    )
    ok(["put", "api", "-e", "prod"], input="v")
    assert ok(["get", "api", "-e", "prod"]) == "v\n"
    assert not (isolated / ".bsecrets").exists()
    assert_error(invoke(["audit", "log"]), 3, "no audit log", "bsecrets init")
    status = json.loads(ok(["status", "--json"]))
    assert status["audit"]["sink"] == "none"


# --- reading the log --------------------------------------------------------------


@pytest.fixture
def busy(vault: Path) -> Path:
    ok(["put", "db/password"], input="p")
    ok(["put", "api/key", "-e", "prod"], input="k")
    ok(["get", "db/password"])
    ok(["get", "api/key", "-e", "prod"])
    assert invoke(["get", "missing"]).exit_code == 3
    return vault


def test_filters(busy: Path) -> None:
    assert [e["name"] for e in events("--env", "prod")] == ["api/key", "api/key"]
    assert [e["action"] for e in events("--name", "db/*")] == ["put", "get"]
    assert [e["name"] for e in events("--outcome", "not_found")] == ["missing"]
    assert len(events("--action", "get")) == 3
    user = events()[0]["actor"]["user"]
    assert len(events("--actor", user)) == len(events())
    assert events("--actor", "nobody-else") == []
    newest = json.loads(ok(["audit", "log", "--json", "--action", "get", "--limit", "2"]))
    assert [(e["name"], e["outcome"]) for e in newest] == [  # newest last
        ("api/key", "ok"),
        ("missing", "not_found"),
    ]
    assert events("--since", "1h") == events()
    assert events("--until", "1h") == []
    assert events("--since", "2000-01-01", "--until", "2999-01-01T00:00:00Z") == events()


def test_table_and_search(busy: Path) -> None:
    table = ok(["audit", "log", "--action", "get"])
    assert table.splitlines()[0].split()[:4] == ["SEQ", "TIME", "ACTOR", "ACTION"]
    assert "missing" in table and "not_found" in table
    found = json.loads(ok(["audit", "search", "not found in environment", "--json"]))
    assert [e["name"] for e in found] == ["missing"]
    assert json.loads(ok(["audit", "search", "API/KEY", "--json"]))  # not case-sensitive


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["audit", "log", "--since", "yesterday"], 2, "invalid --since"),
        (["audit", "log", "--until", "2026-13-45"], 2, "invalid --until"),
        (["audit", "log", "--since", "1d", "--until", "2d"], 2, "not before"),
        (["audit", "log", "--outcome", "maybe"], 2, "invalid --outcome"),
        (["audit", "log", "--env", "nowhere"], 3, "unknown environment"),
        (["audit", "search", "  "], 2, "empty search"),
        (["audit", "export", "--format", "csv"], 2, "unknown export format"),
        (["audit", "report", "--format", "pdf"], 2, "unknown report format"),
        (["audit", "archive", "--to", "x.jsonl"], 2, "--before"),
        (["audit", "archive", "--before", "1d"], 2, "--to FILE"),
        (["audit", "archive", "--apply-retention"], 2, "no audit retention"),
        (["audit", "archive", "--before", "someday", "--to", "x"], 2, "invalid --before"),
    ],
)
def test_bad_input(busy: Path, args: list[str], code: int, needle: str) -> None:
    assert_error(invoke(args), code, needle)


def test_tail_follows_new_events(busy: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bsecrets", "audit", "tail", "-n", "1", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert "audit.tail" in first and first.split()[0].isdigit(), first  # its own event
        time.sleep(0.3)
        assert run_cli(["put", "fresh"], input=b"v").returncode == 0
        deadline = time.monotonic() + 20
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            lines.append(line)
            if " put " in f" {line} " and "fresh" in line:
                break
        assert "fresh" in lines[-1], lines
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- export, anchor ---------------------------------------------------------------


def _audit_keys(work: Path) -> Any:
    vault = LocalVault.open(vault_db(work), Credentials(passphrase=PASSPHRASE), utcnow)
    keys = LocalAuditLog(vault).reading_keys()
    vault.close()
    return keys


def test_export_jsonl_carries_the_chain(busy: Path, tmp_path: Path) -> None:
    import hmac

    out = tmp_path / "audit.jsonl"
    ok(["audit", "export", "--format", "jsonl", "-o", str(out)])
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    key = _audit_keys(busy).manifest_key
    for before, line in itertools.pairwise(lines):
        assert line["prev_mac"] == before["mac"]
    for line in lines:  # an external verifier with the chain key recomputes every MAC
        expected = hmac.new(
            key, bytes.fromhex(line["prev_mac"]) + canonical(line["event"]), "sha256"
        )
        assert expected.hexdigest() == line["mac"]
    only_prod = ok(["audit", "export", "--env", "prod"]).splitlines()
    assert {json.loads(line)["event"]["env"] for line in only_prod} == {"prod"}


# --- archive and retention --------------------------------------------------------


def test_archive_keeps_the_log_provably_continuous(busy: Path, tmp_path: Path) -> None:
    before = len(json.loads(ok(["audit", "log", "--json"])))
    time.sleep(0.01)
    target = tmp_path / "old.jsonl"
    summary = json.loads(
        ok(["audit", "archive", "--before", utcnow().isoformat(), "--to", str(target), "--json"])
    )
    assert summary["archived"] >= before and summary["first_seq"] == 1
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    live = json.loads(ok(["audit", "log", "--json"]))
    assert live[0]["seq"] == summary["last_seq"] + 1
    assert live[0]["action"] == "audit.archive"
    verified = json.loads(ok(["audit", "verify", "--json"]))
    assert verified["ok"] and verified["archived_events"] == summary["archived"]
    # the target exists now: never overwritten
    assert_error(
        invoke(["audit", "archive", "--before", "1s", "--to", str(target)]), 7, "already exists"
    )
    # a changed archive is found, and named
    lines = target.read_text().splitlines()
    row = json.loads(lines[3])
    row["mac"] = "00" * 32
    lines[3] = json.dumps(row)
    target.write_text("\n".join(lines) + "\n")
    result = invoke(["audit", "verify"])
    assert_error(result, 5, str(target), "at event 3")
    assert invoke(["audit", "verify", "--skip-archives"]).exit_code == 0
    target.unlink()
    assert_error(invoke(["audit", "verify"]), 5, "cannot read the archive")


def test_retention_from_the_profile(busy: Path) -> None:
    profile = busy / "bsecrets.yaml"
    profile.write_text(profile.read_text() + "audit:\n  retention: 1s\n")
    time.sleep(1.1)
    summary = json.loads(ok(["audit", "archive", "--apply-retention", "--json"]))
    assert summary["archived"] > 0
    path = Path(summary["path"])
    assert path.parent == busy / ".bsecrets" / "audit" and path.exists()
    assert invoke(["audit", "verify"]).exit_code == 0


@pytest.mark.parametrize(
    ("section", "line", "needle"),
    [
        ("audit:\n  retention: forever\n", 8, "invalid duration"),
        ("audit:\n  keep: 1d\n", 8, "unknown key"),
        ("audit: 30d\n", 7, "must be a mapping"),
    ],
)
def test_bad_retention_in_the_profile(vault: Path, section: str, line: int, needle: str) -> None:
    profile = vault / "bsecrets.yaml"
    text = "version: 1\nenvironments:\n  dev: {backend: local}\n" + "#\n" * 3
    profile.write_text(text + section)  # the section starts on line 7
    result = invoke(["ls"])
    assert result.exit_code == 2, result.stderr
    assert f"bsecrets.yaml:{line}:" in result.stderr and needle in result.stderr, result.stderr


# --- fail-closed ------------------------------------------------------------------


def _break_audit_writes(work: Path) -> None:
    with sqlite3.connect(vault_db(work)) as conn:
        conn.execute(
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit storage refused the write'); END"
        )


def _mend_audit_writes(work: Path) -> None:
    with sqlite3.connect(vault_db(work)) as conn:
        conn.execute("DROP TRIGGER no_audit")


def test_fail_closed_when_the_event_cannot_be_written(vault: Path) -> None:
    ok(["put", "db/password"], input=CANARY)
    _break_audit_writes(vault)
    for args, stdin in (
        (["get", "db/password"], None),
        (["get", "db/password", "--json"], None),
        (["export", "-f", "dotenv"], None),
        (["put", "db/password"], "new-value"),
        (["put", "other"], "new-value"),
    ):
        result = run_cli(args, input=stdin.encode() if stdin else None)
        assert result.returncode != 0, (args, result.stdout)
        assert result.stdout == b"", (args, result.stdout)
        assert CANARY.encode() not in result.stderr
        text = result.stderr.decode()
        if "--json" in args:  # one JSON object (docs/cli.md)
            assert json.loads(text)["exit_code"] == result.returncode
        else:
            assert text.startswith("error: ")
        assert "Traceback" not in text
    result = run_cli(["exec", "--", sys.executable, "-c", "print('ran')"])
    assert result.returncode != 0 and b"ran" not in result.stdout
    _mend_audit_writes(vault)
    history = json.loads(ok(["history", "db/password", "--json"]))
    assert [h["version"] for h in history] == [1]  # the puts changed nothing
    assert invoke(["get", "other"]).exit_code == 3
    assert ok(["get", "db/password"]) == CANARY + "\n"


# --- secrets stay out --------------------------------------------------------------


def _forms(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, raw.hex().encode(), base64.b64encode(raw), base64.b64encode(raw)[:-2]]


def test_canary_never_in_audit_storage_exports_reports_or_archives(
    vault: Path, tmp_path: Path
) -> None:
    ok(["put", "canary"], input=CANARY)
    ok(["get", "canary"])
    ok(["export", "-f", "json"])
    assert run_cli(["exec", "--", sys.executable, "-c", "pass"]).returncode == 0
    assert invoke(["get", "canary", "--version", "9"]).exit_code == 3
    outputs = [ok(["audit", "export"]), ok(["audit", "log", "--json"])]
    outputs += [
        ok(["audit", "report", "--format", fmt]) for fmt in ("markdown", "json", "csv", "html")
    ]
    time.sleep(0.01)
    ok(["audit", "archive", "--before", utcnow().isoformat(), "--to", str(tmp_path / "a.jsonl")])
    stored = (
        b"".join(p.read_bytes() for p in (vault / ".bsecrets").iterdir() if p.is_file())
        + (tmp_path / "a.jsonl").read_bytes()
    )
    for form in _forms(CANARY):
        assert form not in stored, form
        for out in outputs:
            assert form.decode() not in out, form
    with sqlite3.connect(vault_db(vault)) as conn:
        records = b"".join(r[0] for r in conn.execute("SELECT record FROM audit_events"))
    assert b"canary" not in records  # names are sealed too


# --- report -----------------------------------------------------------------------


def test_report_formats_and_a_malformed_criteria_file(busy: Path, tmp_path: Path) -> None:
    markdown = ok(["audit", "report"])
    assert "PASS" in markdown or "FAIL" in markdown
    data = json.loads(ok(["audit", "report", "--format", "json"]))
    assert data["criteria"] and isinstance(data["passed"], bool | None)
    out = tmp_path / "report.html"
    ok(["audit", "report", "--format", "html", "-o", str(out)])
    assert out.read_text().lstrip().lower().startswith("<!doctype html")
    bad = tmp_path / "criteria.yaml"
    bad.write_text("max_denied: 0\nmax_secret_age: [1, 2\n")
    result = invoke(["audit", "report", "--criteria", str(bad)])
    assert result.exit_code == 2, result.stderr
    assert f"{bad}:" in result.stderr and result.stderr.startswith("error: ")


def test_status_shows_the_audit_log(busy: Path) -> None:
    status = json.loads(ok(["status", "--json"]))
    audit = [i for i in status["indicators"] if i["name"] == "audit"]
    assert audit and audit[0]["ok"] and audit[0]["value"] > 0
