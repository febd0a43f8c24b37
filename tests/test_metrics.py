"""``bsecrets metrics`` (docs/observability.md): exact counts after a scripted
sequence of operations, parsed with prometheus-client's own parser; the textfile
for node_exporter; names only when the profile allows them; a tampered chain; rotation
and break-glass gauges; a Vault environment's call times and a backend down; bad input."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import assert_error, invoke
from helpers.openbao_server import OpenBao
from helpers.rotation import policy
from helpers.values import PASSPHRASE
from helpers.vault_env import unique_prefix, vault_env, write_profile
from prometheus_client.parser import text_string_to_metric_families

from bsecrets.config.loader import load_profile
from bsecrets.errors import BsecretsError
from bsecrets.metrics import names
from bsecrets.observing import OperationObserver
from bsecrets.services import metrics_report
from bsecrets.services.manager import SecretsManager
from bsecrets.vaultfile.credentials import Credentials

VALUE = "metric-canary-Zq81"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, by (series name, sorted labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def operations(found: Samples) -> dict[tuple[str, str, str, str], float]:
    """bsecrets_operations_total by (action, env, backend, outcome)."""
    out = {}
    for (series, labels), value in found.items():
        if series == "bsecrets_operations_total":
            got = dict(labels)
            out[(got["action"], got["env"], got["backend"], got["outcome"])] = value
    return out


def ok(args: list[str], **kw: str) -> str:
    result = invoke(args, **kw)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.stderr
    return result.stdout


def scripted(work: Path) -> None:
    (work / "v.txt").write_text(VALUE)
    for name in ("db/password", "api/key"):
        ok(["put", name, "--from-file", "v.txt", "-e", "dev"])
    ok(["get", "db/password", "-e", "dev"])
    ok(["get", "db/password", "-e", "dev"])
    ok(["get", "api/key", "-e", "dev"])
    assert invoke(["get", "missing", "-e", "dev"]).exit_code == 3
    assert invoke(["get", "db/password", "-e", "prod"]).exit_code == 3
    ok(["rm", "api/key", "-e", "dev"])


def test_counts_after_a_scripted_sequence(vault: Path) -> None:
    scripted(vault)
    text = ok(["metrics"])
    assert VALUE not in text and "db/password" not in text
    found = samples(text)
    assert operations(found) == {
        ("init", "", "", "ok"): 1,
        ("put", "dev", "local", "ok"): 2,
        ("get", "dev", "local", "ok"): 3,
        ("get", "dev", "local", "not_found"): 1,
        ("get", "prod", "local", "not_found"): 1,
        ("rm", "dev", "local", "ok"): 1,
        ("audit.verify", "", "", "ok"): 1,  # this run's own look at the trail
    }
    assert found[("bsecrets_secrets", (("backend", "local"), ("env", "dev")))] == 1
    assert found[("bsecrets_secrets", (("backend", "local"), ("env", "prod")))] == 0
    assert found[("bsecrets_audit_verify_ok", ())] == 1
    assert found[("bsecrets_backend_up", (("backend", "local"), ("env", "dev")))] == 1
    # init, 2 puts, 5 gets, rm, audit.verify: 10 events (the listings come after the count)
    assert found[("bsecrets_audit_events", ())] == 10 + 2
    # the next run counts this one: one more verify, and one ls of each environment
    again = operations(samples(ok(["metrics"])))
    assert again[("audit.verify", "", "", "ok")] == 2
    assert again[("ls", "dev", "local", "ok")] == again[("ls", "prod", "local", "ok")] == 1
    series = {name for name, _ in found}
    assert series <= names.exposed_series()


def test_textfile_for_node_exporter(vault: Path) -> None:
    scripted(vault)
    folder = vault / "textfile"
    folder.mkdir()
    result = invoke(["metrics", "--textfile", str(folder)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and f"wrote {folder / 'bsecrets.prom'}" in result.stderr
    written = folder / "bsecrets.prom"
    assert stat.S_IMODE(written.stat().st_mode) == 0o644  # node_exporter reads it
    assert sorted(p.name for p in folder.iterdir()) == ["bsecrets.prom"]  # no temp file left
    found = samples(written.read_text())
    assert operations(found)[("get", "dev", "local", "ok")] == 3


@pytest.mark.parametrize(
    ("target", "needle"), [("missing", "is not a folder"), ("a-file", "is not a folder")]
)
def test_textfile_must_be_a_folder(vault: Path, target: str, needle: str) -> None:
    (vault / "a-file").write_text("x")
    result = invoke(["metrics", "--textfile", str(vault / target)])
    assert_error(result, 2, needle)
    assert "node_exporter" in result.stderr  # the hint
    events = ok(["audit", "log", "--action", "audit.*", "--json"])
    assert "audit.verify" not in events  # refused before anything was read


def test_names_only_when_the_profile_says_so(vault: Path) -> None:
    scripted(vault)
    profile = vault / "bsecrets.yaml"
    profile.write_text(profile.read_text() + "metrics:\n  names: true\n")
    found = samples(ok(["metrics"]))
    labelled = {dict(labels).get("name") for (series, labels) in found if "operations" in series}
    assert {"db/password", "api/key", "missing"} <= labelled
    assert all(VALUE not in str(key) for key in found)


def test_a_bad_metrics_section_is_a_profile_error(vault: Path) -> None:
    profile = vault / "bsecrets.yaml"
    profile.write_text(profile.read_text() + "metrics:\n  values: true\n")
    assert_error(invoke(["metrics"]), 2, "metrics")


def test_a_tampered_chain_says_so_and_exits_5(vault: Path) -> None:
    scripted(vault)
    folder = vault / "textfile"
    folder.mkdir()
    with sqlite3.connect(vault / ".bsecrets" / "vault.db") as db:
        db.execute("UPDATE audit_events SET record = randomblob(length(record)) WHERE seq = 3")
    db.close()
    result = invoke(["metrics", "--textfile", str(folder)])
    assert_error(result, 5, "audit log")
    found = samples((folder / "bsecrets.prom").read_text())  # written all the same
    assert found[("bsecrets_audit_verify_ok", ())] == 0
    assert operations(found) == {}  # no counts from a chain that does not verify


def test_rotation_gauges_with_a_fixed_clock(vault: Path) -> None:
    scripted(vault)
    policy(vault, "dev", "{max_age: 30d}")
    profile = load_profile(vault / "bsecrets.yaml")
    creds = Credentials(use_keyring=False, passphrase=PASSPHRASE)
    m = SecretsManager(profile, creds)
    written = m.get("dev", "db/password").created_at
    m.close()

    def gauges(at: timedelta) -> tuple[float, float]:
        clock = SecretsManager(profile, creds, clock=lambda: written + at)
        try:
            found = samples(metrics_report.collect(clock)[0].exposition().decode())
        finally:
            clock.close()
        env = (("env", "dev"),)
        return found[("bsecrets_rotation_due", env)], found[("bsecrets_rotation_overdue", env)]

    assert gauges(timedelta(days=1)) == (0, 0)
    assert gauges(timedelta(days=25)) == (1, 0)  # ends within 7 days
    assert gauges(timedelta(days=31)) == (0, 1)


def test_a_vault_environment_times_its_calls_and_reports_down(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao
) -> None:
    prefix = unique_prefix("metrics")
    envs = {"staging": vault_env(openbao.address, prefix),
            "gone": vault_env("http://127.0.0.1:9", prefix)}  # fmt: skip
    write_profile(isolated, monkeypatch, envs)
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    (isolated / "v.txt").write_text(VALUE)
    ok(["put", "db/password", "--from-file", "v.txt", "-e", "staging"])
    ok(["get", "db/password", "-e", "staging"])
    assert invoke(["get", "db/password", "-e", "gone"]).exit_code == 6
    found = samples(ok(["metrics"]))
    staging = (("backend", "vault"), ("env", "staging"))
    gone = (("backend", "vault"), ("env", "gone"))
    assert operations(found)[("get", "staging", "vault", "ok")] == 1
    assert operations(found)[("get", "gone", "vault", "failed")] == 1
    # a remote call's time: from its intent event to its outcome (put, get; gone's get)
    assert found[("bsecrets_backend_call_seconds_count", staging)] == 2
    assert found[("bsecrets_backend_call_seconds_count", gone)] == 1
    assert found[("bsecrets_backend_up", staging)] == 1
    assert found[("bsecrets_backend_up", gone)] == 0
    assert found[("bsecrets_secrets", staging)] == 1
    assert ("bsecrets_backend_last_success_timestamp_seconds", gone) not in found


def test_another_principal_is_refused(vault: Path) -> None:
    invoke(["access", "principal", "add", "bob"], env={"BSECRETS_NEW_PASSPHRASE": "bob pass 1234"})
    result = invoke(["--as", "bob", "metrics"], env={"BSECRETS_PASSPHRASE": "bob pass 1234"})
    assert_error(result, 4, "owner")


class Raising(OperationObserver):
    def begun(self, action: str, env: str | None, remote: bool) -> Any:
        raise RuntimeError("begun")

    def ended(self, handle: Any, fields: Mapping[str, Any], error: BaseException | None) -> None:
        raise RuntimeError("ended")

    def recorded(self, fields: Mapping[str, Any]) -> None:
        raise RuntimeError("recorded")


def test_an_observer_that_raises_changes_nothing(vault: Path) -> None:
    """Metrics are watched, not relied on: an observer's failure is not the operation's."""
    profile = load_profile(vault / "bsecrets.yaml")
    m = SecretsManager(profile, Credentials(use_keyring=False, passphrase=PASSPHRASE))
    counted = metrics_report.metrics_for(profile)
    m.audit.observers += [Raising(), counted]
    try:
        m.put("dev", "x", b"v1")
        assert m.get("dev", "x").value == b"v1"
        with pytest.raises(BsecretsError):
            m.get("dev", "nope")
    finally:
        m.close()
    found = operations(samples(counted.exposition().decode()))
    assert found == {("put", "dev", "local", "ok"): 1, ("get", "dev", "local", "ok"): 1,
                     ("get", "dev", "local", "not_found"): 1}  # fmt: skip
    assert operations(samples(ok(["metrics"])))[("get", "dev", "local", "not_found")] == 1


def test_without_a_vault_file_there_is_nothing_to_count(isolated: Path) -> None:
    (isolated / "bsecrets.yaml").write_text(
        "version: 1\nenvironments:\n  staging: {backend: vault, address: 'http://127.0.0.1:9',"
        " prefix: app}\n"
    )
    assert_error(invoke(["metrics"]), 3, "no audit log")
