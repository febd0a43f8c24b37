"""The compliance report of ``bsecrets audit report`` (bsecrets/audit/report/):
the criteria file, the report built from events and inventory, and its renderings."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bsecrets.audit.report import (
    CSV_HEADER,
    FORMATS,
    LIST_LIMIT,
    Criteria,
    CriteriaError,
    build_report,
    load_criteria,
    render_report,
)
from bsecrets.cli.exit_codes import ExitCode, exit_code_of
from bsecrets.errors import UsageError
from bsecrets.models import SecretSummary

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=30)
CANARY = "canary-value-7a6b5c"

# --- helpers -----------------------------------------------------------------


def event(
    seq: int,
    action: str,
    env: str | None = "dev",
    outcome: str = "ok",
    *,
    user: str = "ann",
    host: str = "laptop",
    principal: str = "owner",
    minute: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    e: dict[str, Any] = {
        "v": 1,
        "seq": seq,
        "time": f"2026-11-29T14:{minute:02d}:{seq % 60:02d}.000Z",
        "actor": {"user": user, "principal": principal, "host": host, "pid": 4242},
        "action": action,
        "env": env,
        "outcome": outcome,
        "request_id": f"req{seq}",
        "mac": "ab" * 32,
    }
    e.update(extra)
    return e


def summary(name: str, age_days: float = 1, *, deleted: bool = False) -> SecretSummary:
    return SecretSummary(name, 1, NOW - timedelta(days=age_days), {}, deleted)


CHAIN_OK = {"ok": True, "problem": None, "events": 10}


def report(
    events: list[dict[str, Any]],
    inventory: dict[str, Any] | None = None,
    criteria: Criteria | None = None,
    chain: dict[str, Any] | None = CHAIN_OK,
    **kwargs: Any,
) -> dict[str, Any]:
    return build_report(
        (e for e in events),  # a generator: the report must iterate once
        inventory if inventory is not None else {},
        criteria or Criteria(),
        since=SINCE,
        until=NOW,
        now=NOW,
        chain=chain,
        **kwargs,
    )


def criterion(rep: dict[str, Any], id_: str) -> dict[str, Any]:
    (found,) = [c for c in rep["criteria"] if c["id"] == id_]
    return found


def write(tmp_path: Path, text: str | bytes, name: str = "criteria.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# --- the criteria file ---------------------------------------------------------


def test_defaults_without_a_file() -> None:
    criteria = load_criteria(None)
    assert criteria == Criteria()
    assert criteria.production_envs == ("prod", "production")
    assert criteria.max_secret_age == timedelta(days=90)
    assert criteria.max_denied == 0
    assert criteria.max_production_reads is None
    assert criteria.allow_never_read is True
    assert criteria.require_chain_valid is True
    assert criteria.source is None


def test_every_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# compliance criteria\n"
        "production_envs: [live, prod-eu]\n"
        "max_secret_age: 2w\n"
        "max_denied: 3\n"
        "max_production_reads: 100\n"
        "allow_never_read: false\n"
        "require_chain_valid: no\n",
    )
    criteria = load_criteria(path)
    assert criteria == Criteria(
        production_envs=("live", "prod-eu"),
        max_secret_age=timedelta(weeks=2),
        max_denied=3,
        max_production_reads=100,
        allow_never_read=False,
        require_chain_valid=False,
        source=str(path),
    )


def test_nulls_and_an_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "max_secret_age: null\nmax_denied: ~\nmax_production_reads:\n")
    criteria = load_criteria(path)
    assert (criteria.max_secret_age, criteria.max_denied, criteria.max_production_reads) == (
        None,
        None,
        None,
    )
    empty = load_criteria(write(tmp_path, "# nothing yet\n", "empty.yaml"))
    assert empty._replace(source=None) == Criteria()


def test_single_production_env_as_a_string(tmp_path: Path) -> None:
    assert load_criteria(write(tmp_path, "production_envs: live\n")).production_envs == ("live",)


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        pytest.param("max_denied: 1\nproduction_envs: [prod\n", 3, "invalid YAML", id="bad-yaml"),
        pytest.param("- prod\n- dev\n", 1, "must be a mapping", id="top-level-list"),
        pytest.param("just text\n", 1, "must be a mapping", id="top-level-scalar"),
        pytest.param("max_denied: 0\nmax_deny: 1\n", 2, "max_deny", id="unknown-key"),
        pytest.param('max_denied: "x"\n', 1, "max_denied", id="denied-string"),
        pytest.param("\n\nmax_denied: -1\n", 3, "max_denied", id="denied-negative"),
        pytest.param("max_denied: 1.5\n", 1, "max_denied", id="denied-float"),
        pytest.param("max_production_reads: yes\n", 1, "max_production_reads", id="reads-bool"),
        pytest.param("production_envs: 3\n", 1, "production_envs", id="envs-int"),
        pytest.param("production_envs:\n  - prod\n  - 4\n", 3, "production_envs", id="envs-item"),
        pytest.param("production_envs: {a: 1}\n", 1, "production_envs", id="envs-mapping"),
        pytest.param("production_envs: prod, dev\n", 1, "production_envs", id="envs-bad-name"),
        pytest.param("allow_never_read: maybe\n", 1, "allow_never_read", id="bool-maybe"),
        pytest.param("require_chain_valid: 1\n", 1, "require_chain_valid", id="bool-int"),
        pytest.param("max_secret_age: 90x\n", 1, "max_secret_age", id="bad-duration"),
        pytest.param("max_secret_age: 90\n", 1, "max_secret_age", id="duration-no-unit"),
        pytest.param("max_secret_age: 0d\n", 1, "max_secret_age", id="duration-zero"),
        pytest.param("max_denied: 1\nmax_denied: 2\n", 2, "max_denied", id="duplicate-key"),
        pytest.param("max_denied: " + "9" * 5000 + "\n", 1, "max_denied", id="huge-count"),
    ],
)
def test_bad_criteria_file(tmp_path: Path, text: str, line: int, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_criteria(path)
    exc = caught.value
    assert isinstance(exc, CriteriaError)
    assert exit_code_of(exc) == ExitCode.USAGE == 2
    assert f"{path}:{line}:" in str(exc)
    assert key in str(exc)
    assert exc.hint


def test_unknown_key_suggests_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        load_criteria(write(tmp_path, "max_denid: 1\n"))
    assert caught.value.hint is not None
    assert "did you mean 'max_denied'" in caught.value.hint
    assert "require_chain_valid" in caught.value.hint


def test_missing_unreadable_and_not_utf8(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.yaml", tmp_path):  # no such file; a folder
        with pytest.raises(UsageError) as caught:
            load_criteria(path)
        assert exit_code_of(caught.value) == 2
        assert str(caught.value).startswith(f"{path}:")
        assert caught.value.hint
    path = write(tmp_path, b"max_denied: 1\n\xff\n")
    with pytest.raises(UsageError) as caught:
        load_criteria(path)
    assert f"{path}:2:" in str(caught.value)


def test_module_import_is_light() -> None:
    code = (
        "import sys, bsecrets.audit.report; "
        "print(sorted(m for m in ('yaml', 'rich', 'typer') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# --- counting --------------------------------------------------------------------


def test_started_events_are_not_accesses() -> None:
    rep = report(
        [
            event(1, "get", "prod", "started", name="DB"),
            event(2, "get", "prod", "ok", name="DB"),
            event(3, "put", "prod", "started", name="DB"),
            event(4, "put", "prod", "denied", name="DB", reason="read-only"),
        ]
    )
    assert rep["totals"]["events"] == 4
    assert rep["totals"]["accesses"] == 2
    assert rep["totals"]["by_outcome"] == {"started": 2, "ok": 1, "denied": 1}
    assert rep["totals"]["by_action"] == {"get": 1, "put": 1}
    db = rep["secrets"]["prod/DB"]
    assert (db["reads"], db["writes"], db["denied"]) == (1, 0, 1)
    actor = rep["actors"]["ann@laptop"]
    assert (actor["events"], actor["reads"], actor["writes"], actor["denied"]) == (2, 1, 0, 1)
    assert rep["production_reads"]["total"] == 1
    assert rep["denied"]["total"] == 1


def test_access_is_tabled_per_principal_and_environment() -> None:
    rep = report(
        [
            event(1, "get", "dev", name="A"),
            event(2, "export", "dev", names=["A", "B"], principal="alice"),
            event(3, "put", "dev", name="A", principal="alice"),
            event(4, "get", "prod", "denied", name="DB", principal="alice", minute=7),
            event(5, "get", "prod", "started", name="DB", principal="token-0123456789ab"),
            event(6, "get", "prod", name="DB", principal="token-0123456789ab"),
            event(7, "ls", "dev", "not_found", principal="alice"),
            event(8, "unlock", None, principal="alice"),
        ]
    )
    assert rep["principals"] == {
        "owner": {
            "dev": {"reads": 1, "secrets_read": 1, "writes": 0, "denied": 0,
                    "last_access": "2026-11-29T14:00:01.000Z"},
        },
        "alice": {
            "dev": {"reads": 1, "secrets_read": 2, "writes": 1, "denied": 0,
                    "last_access": "2026-11-29T14:00:03.000Z"},
            "prod": {"reads": 0, "secrets_read": 0, "writes": 0, "denied": 1,
                     "last_access": "2026-11-29T14:07:04.000Z"},
        },
        "token-0123456789ab": {
            "prod": {"reads": 1, "secrets_read": 1, "writes": 0, "denied": 0,
                     "last_access": "2026-11-29T14:00:06.000Z"},
        },
    }  # fmt: skip


def test_bulk_reads_count_for_each_name() -> None:
    rep = report(
        [
            event(1, "export", "dev", names=["A", "B", "C"]),
            event(2, "exec", "dev", names=["A"], user="bob"),
            event(3, "get", "dev", name="A#user"),
            event(4, "diff", "dev", names=["B"]),
            event(5, "read", "dev", names=["C"], minute=30),
        ]
    )
    secrets = rep["secrets"]
    assert {key: s["reads"] for key, s in secrets.items()} == {"dev/A": 3, "dev/B": 2, "dev/C": 2}
    assert secrets["dev/A"]["distinct_readers"] == 2
    assert secrets["dev/A"]["readers"] == ["ann@laptop", "bob@laptop"]
    assert secrets["dev/C"]["last_read"] == "2026-11-29T14:30:05.000Z"
    assert rep["actors"]["ann@laptop"]["reads"] == 4
    assert rep["actors"]["ann@laptop"]["secrets_read"] == 6


def test_writes_failures_and_other_actions() -> None:
    rep = report(
        [
            event(1, "put", "dev", name="A"),
            event(2, "rm", "dev", name="A"),
            event(3, "restore", "dev", name="A"),
            event(4, "rollback", "dev", name="A", version=1),
            event(5, "get", "dev", "not_found", name="B"),
            event(6, "get", "dev", "failed", name="A", reason="backend down"),
            event(7, "ls", "dev"),
            event(8, "history", "dev", name="A"),
            event(9, "unlock", None),
            event(10, "audit.report", None),
        ]
    )
    a = rep["secrets"]["dev/A"]
    assert (a["reads"], a["writes"], a["denied"], a["last_read"]) == (0, 4, 0, None)
    assert "dev/B" not in rep["secrets"]  # a read of nothing is no access to a secret
    actor = rep["actors"]["ann@laptop"]
    assert actor["events"] == 10
    assert (actor["writes"], actor["failed"], actor["not_found"]) == (4, 1, 1)
    assert actor["envs"] == ["dev"]


def test_actor_identity() -> None:
    ci = {"provider": "github", "pipeline": "deploy", "run": "7", "repository": "acme/app"}
    rep = report(
        [
            event(1, "get", name="A"),
            event(2, "get", name="A", principal="deploy-bot"),
            event(3, "get", name="A", host="runner", ci=ci),
            event(4, "get", name="A", host="runner", ci={"provider": "gitlab"}),
            {"v": 1, "seq": 5, "time": "2026-11-29T14:05:00.000Z", "action": "audit.intake",
             "outcome": "failed", "late": True},
        ]
    )  # fmt: skip
    assert sorted(rep["actors"]) == [
        "ann@laptop",
        "ann@laptop (deploy-bot)",
        "ann@runner [ci:github acme/app]",
        "ann@runner [ci:gitlab]",
        "unknown",
    ]
    assert rep["totals"]["late"] == 1


# --- the criteria ------------------------------------------------------------------


def test_denied_criterion() -> None:
    events = [event(1, "get", "prod", "denied", name="DB", reason="no access")]
    failed = report(events)
    c = criterion(failed, "max_denied")
    assert c["passed"] is False
    assert failed["passed"] is False
    item = failed["denied"]["items"][0]
    assert item == {
        "time": "2026-11-29T14:00:01.000Z",
        "seq": 1,
        "actor": "ann@laptop",
        "action": "get",
        "env": "prod",
        "names": ["DB"],
        "reason": "no access",
    }
    assert criterion(report(events, criteria=Criteria(max_denied=1)), "max_denied")["passed"]
    assert criterion(report([]), "max_denied")["passed"] is True
    report_only = criterion(report(events, criteria=Criteria(max_denied=None)), "max_denied")
    assert report_only["passed"] is None
    assert "denied attempts: 1" in report_only["detail"]


def test_denied_list_is_capped() -> None:
    events = [event(i, "unlock", None, "denied", reason="wrong passphrase") for i in range(1005)]
    rep = report(events)
    assert rep["denied"]["total"] == 1005
    assert rep["denied"]["shown"] == len(rep["denied"]["items"]) == LIST_LIMIT
    assert "denied attempts: 1005" in criterion(rep, "max_denied")["detail"]


def test_production_reads_criterion() -> None:
    events = [
        event(1, "get", "prod", name="DB"),
        event(2, "export", "production", names=["A", "B"]),
        event(3, "get", "dev", name="DB"),
        event(4, "get", "prod", "denied", name="DB"),
        event(5, "get", "prod", "started", name="DB"),
        event(6, "put", "prod", name="DB"),
    ]
    rep = report(events, criteria=Criteria(max_production_reads=2, max_denied=None))
    prod = rep["production_reads"]
    assert (prod["total"], prod["secret_reads"], prod["shown"]) == (2, 3, 2)
    assert [i["seq"] for i in prod["items"]] == [1, 2]
    assert prod["items"][1]["names"] == ["A", "B"]
    assert criterion(rep, "max_production_reads")["passed"] is True
    strict = report(events, criteria=Criteria(max_production_reads=1))
    assert criterion(strict, "max_production_reads")["passed"] is False
    assert criterion(report(events), "max_production_reads")["passed"] is None  # report only
    other = report(events, criteria=Criteria(production_envs=("dev",), max_production_reads=0))
    assert other["production_reads"]["total"] == 1
    assert criterion(other, "max_production_reads")["passed"] is False


def test_production_reads_list_is_capped() -> None:
    rep = report([event(i, "get", "prod", name="DB") for i in range(LIST_LIMIT + 3)])
    assert rep["production_reads"]["total"] == LIST_LIMIT + 3
    assert len(rep["production_reads"]["items"]) == LIST_LIMIT


def test_never_read_criterion() -> None:
    inventory = {"dev": [summary("A"), summary("B"), summary("GONE", deleted=True)]}
    strict = Criteria(allow_never_read=False)
    partly = report([event(1, "get", "dev", name="A")], inventory, strict)
    assert partly["never_read"] == {"total": 1, "by_env": {"dev": ["B"]}}
    c = criterion(partly, "never_read")
    assert c["passed"] is False
    assert "dev/B" in c["detail"]
    everything = report([event(1, "export", "dev", names=["A", "B"])], inventory, strict)
    assert criterion(everything, "never_read")["passed"] is True
    # a denied or only-started read is not a read
    tried = [
        event(1, "get", "dev", "started", name="A"),
        event(2, "get", "dev", "denied", name="B"),
    ]
    assert report(tried, inventory, strict)["never_read"]["by_env"] == {"dev": ["A", "B"]}
    allowed = criterion(report([], inventory), "never_read")
    assert allowed["passed"] is None
    assert "secrets never read: 2" in allowed["detail"]


def test_never_read_with_an_env_not_inventoried() -> None:
    strict = Criteria(allow_never_read=False)
    read_all = [event(1, "get", "dev", name="A"), event(2, "get", "prod", name="DB")]
    for inventory, kwargs in [
        ({"dev": [summary("A")], "prod": None}, {}),  # prod unreachable
        ({"dev": [summary("A")]}, {"environments": ["dev", "prod"]}),  # prod missing
        ({"dev": [summary("A")]}, {}),  # prod named by the events only
    ]:
        rep = report(read_all, inventory, strict, **kwargs)
        assert rep["environments"]["not_inventoried"] == ["prod"]
        c = criterion(rep, "never_read")
        assert c["passed"] is None
        assert "not inventoried: prod" in c["detail"]
        age = criterion(rep, "max_secret_age")
        assert age["passed"] is None
        assert "not inventoried: prod" in age["detail"]
        assert rep["passed"] is True  # could not be evaluated: listed, not failed
    # a failure in the inventoried envs is a failure all the same
    rep = report([], {"dev": [summary("A", age_days=400)], "prod": None}, strict)
    assert criterion(rep, "never_read")["passed"] is False
    assert criterion(rep, "max_secret_age")["passed"] is False


def test_secret_age_criterion() -> None:
    inventory = {
        "dev": [summary("FRESH", 10), summary("OLD", 91), summary("DELETED", 500, deleted=True)],
        "prod": [summary("OLDER", 200)],
    }
    rep = report([], inventory)
    old = rep["secrets_over_max_age"]
    assert old["max_age"] == "90d"
    assert [(i["env"], i["name"], i["age_days"]) for i in old["items"]] == [
        ("prod", "OLDER", 200),
        ("dev", "OLD", 91),
    ]
    c = criterion(rep, "max_secret_age")
    assert c["passed"] is False
    assert "prod/OLDER" in c["detail"]
    longer = report([], inventory, Criteria(max_secret_age=timedelta(days=365)))
    assert criterion(longer, "max_secret_age")["passed"] is True
    unchecked = report([], inventory, Criteria(max_secret_age=None))
    assert criterion(unchecked, "max_secret_age")["passed"] is None
    assert unchecked["secrets_over_max_age"]["items"] == []


@pytest.mark.parametrize(
    ("chain", "require", "passed", "words"),
    [
        (CHAIN_OK, True, True, "verifies"),
        (
            {"ok": False, "problem": {"seq": 42, "kind": "changed", "detail": "mac"}, "events": 9},
            True,
            False,
            "42",
        ),
        (None, True, None, "not checked"),
        ({"ok": False, "problem": None, "events": 9}, False, None, "not required"),
    ],
)
def test_chain_criterion(
    chain: dict[str, Any] | None, require: bool, passed: bool | None, words: str
) -> None:
    rep = report([], criteria=Criteria(require_chain_valid=require), chain=chain)
    c = criterion(rep, "chain_valid")
    assert c["passed"] is passed
    assert words in c["detail"]
    assert rep["passed"] is (passed is not False)
    assert rep["chain"]["checked"] is (chain is not None)


def test_an_all_passing_report() -> None:
    inventory = {"prod": [summary("DB")], "dev": [summary("A")]}
    events = [event(1, "get", "prod", name="DB"), event(2, "read", "dev", names=["A"])]
    criteria = Criteria(max_production_reads=5, allow_never_read=False)
    rep = report(events, inventory, criteria)
    assert [c["passed"] for c in rep["criteria"]] == [True] * 5
    assert rep["passed"] is True
    assert rep["period"] == {
        "since": "2026-11-01T12:00:00.000Z",
        "until": "2026-12-01T12:00:00.000Z",
        "first_event": "2026-11-29T14:00:01.000Z",
        "last_event": "2026-11-29T14:00:02.000Z",
    }
    assert rep["generated_at"] == "2026-12-01T12:00:00.000Z"
    assert rep["environments"] == {"inventoried": {"prod": 1, "dev": 1}, "not_inventoried": []}
    assert set(rep) == {
        "version",
        "generated_at",
        "period",
        "passed",
        "criteria",
        "settings",
        "chain",
        "environments",
        "totals",
        "secrets",
        "actors",
        "principals",
        "break_glass",
        "denied",
        "production_reads",
        "never_read",
        "secrets_over_max_age",
    }


# --- rendering ---------------------------------------------------------------------

EVIL = "<script>x</script>"


def rich_report() -> dict[str, Any]:
    events = [
        event(1, "get", "prod", name="DB", details={"note": CANARY}),
        event(2, "get", "prod", "denied", name=EVIL, user=EVIL, reason=f"nope {EVIL} | a"),
        event(3, "export", "dev", names=["A", "B"], user="=cmd()"),
    ]
    events[0]["value"] = CANARY  # never in an event; and never copied if it were
    inventory = {"prod": [summary("DB", 120), summary(EVIL)], "dev": [summary("A")], "qa": None}
    criteria = Criteria(allow_never_read=False, max_production_reads=10)
    return report(events, inventory, criteria, chain=None)


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    rep = rich_report()
    return {fmt: render_report(rep, fmt) for fmt in FORMATS}


def test_every_format_shows_the_criteria(rendered: dict[str, str]) -> None:
    for fmt, text in rendered.items():
        assert text.endswith("\n"), fmt
        assert CANARY not in text, fmt
        for id_ in ("chain_valid", "max_denied", "max_production_reads", "never_read"):
            assert id_ in text, (fmt, id_)
    for fmt in ("markdown", "html", "csv"):
        for word in ("PASS", "FAIL", "N/A"):
            assert word in rendered[fmt], (fmt, word)
    for fmt in ("markdown", "html"):
        assert "Access by principal" in rendered[fmt], fmt


def test_markdown(rendered: dict[str, str]) -> None:
    text = rendered["markdown"]
    assert text.startswith("# bsecrets audit report\n")
    assert "**Result: FAIL**" in text
    lines = text.splitlines()
    first_table = next(i for i, line in enumerate(lines) if line.startswith("|"))
    assert lines[first_table] == "| Result | Criterion | Detail |"
    assert lines.index("## Criteria") < first_table
    assert "<script>" not in text
    assert "nope \\<script\\>x\\</script\\> \\| a" in text  # one cell, no raw HTML
    assert "Not inventoried: qa" in text


def test_json(rendered: dict[str, str]) -> None:
    data = json.loads(rendered["json"])
    assert data == json.loads(json.dumps(rich_report()))
    assert rendered["json"] == json.dumps(data, sort_keys=True, indent=2) + "\n"
    assert data["passed"] is False


def test_csv(rendered: dict[str, str]) -> None:
    rows = list(csv.reader(io.StringIO(rendered["csv"])))
    assert tuple(rows[0]) == CSV_HEADER == ("section", "key", "metric", "value")
    assert all(len(row) == 4 for row in rows)
    cells = {(s, k, m): v for s, k, m, v in rows[1:]}
    assert cells[("summary", "", "passed")] == "false"
    assert cells[("criteria", "max_denied", "result")] == "FAIL"
    assert cells[("criteria", "chain_valid", "result")] == "N/A"
    assert cells[("secret", "prod/DB", "reads")] == "1"
    assert cells[("principal", "owner/prod", "reads")] == "1"
    assert cells[("denied", "", "total")] == "1"
    assert cells[("denied", "2", "names")] == EVIL
    assert cells[("environment", "qa", "inventoried")] == "false"
    assert ("never_read", f"prod/{EVIL}", "never_read") in cells
    assert cells[("over_max_age", "prod/DB", "age_days")] == "120"
    # a spreadsheet must not run an actor name as a formula
    assert cells[("actor", "'=cmd()@laptop", "reads")] == "1"


def test_html_is_standalone_and_escaped(rendered: dict[str, str]) -> None:
    text = rendered["html"]
    assert text.startswith("<!DOCTYPE html>")
    assert text.rstrip().endswith("</html>")
    assert EVIL not in text
    assert "&lt;script&gt;x&lt;/script&gt;" in text
    lowered = text.lower()
    assert "<script" not in lowered
    assert "src=" not in lowered and "href=" not in lowered and "@import" not in lowered
    assert '<td class="FAIL">FAIL</td>' in text


def test_unknown_format() -> None:
    with pytest.raises(UsageError) as caught:
        render_report(report([]), "pdf")
    assert exit_code_of(caught.value) == 2


def test_one_pass_over_many_events() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        for i in range(20_000):
            yield event(i, "get", "prod" if i % 2 else "dev", name=f"S{i % 50}")

    rep = build_report(stream(), {}, Criteria(), since=None, until=None, now=NOW, chain=None)
    assert rep["totals"]["events"] == 20_000
    assert rep["production_reads"]["total"] == 10_000
    assert len(rep["secrets"]) == 50
