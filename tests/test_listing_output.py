"""``ls`` prints what it printed before it was made fast for 100,000 secrets (issue
#20, target 5): the table, its --quiet form and the times are checked here against
their plain definitions, as the code wrote them before, on random input and on a real
listing with tags, a deleted secret and a tag value ending in spaces."""

from __future__ import annotations

import gc
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers.cli import invoke

from bsecrets.cli.cli_context import TABLE_CHUNK, CliContext
from bsecrets.cli.collector import paused as collector_paused
from bsecrets.config.settings import Settings
from bsecrets.timeutil import iso, parse_iso


def reference_table(headers: list[str], rows: list[list[str]], *, quiet: bool = False) -> str:
    """CliContext.table as it was written: a cell at a time, a line at a time."""
    if quiet:
        return "".join(row[0] + "\n" for row in rows)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    return "".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n"
        for row in [headers, *rows]
    )


def reference_iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def printed(capsys: pytest.CaptureFixture[str], headers: list[str], rows: list[list[str]], *,
            quiet: bool = False) -> str:  # fmt: skip
    settings = Settings.resolve(profile=None, env=None, json=False, quiet=quiet, no_color=True)
    CliContext(settings).table(headers, rows)
    return capsys.readouterr().out


def test_table_is_the_plain_definition(capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(5)
    alphabet = ["a", "Z", "0", " ", "-", "%", "%s", "{}", "é", "\t", "名"]
    for _ in range(300):
        columns = rng.randint(1, 5)
        headers = ["".join(rng.choices(alphabet, k=rng.randint(0, 6))) for _ in range(columns)]
        rows = [["".join(rng.choices(alphabet, k=rng.randint(0, 9))) for _ in range(columns)]
                for _ in range(rng.randint(0, 8))]  # fmt: skip
        assert printed(capsys, headers, rows) == reference_table(headers, rows)
        assert printed(capsys, headers, rows, quiet=True) == reference_table(
            headers, rows, quiet=True
        )


def test_table_longer_than_a_chunk_is_whole(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [[f"name-{i}", f"v{i % 7}", ""] for i in range(2 * TABLE_CHUNK + 3)]
    headers = ["NAME", "VERSION", "TAGS"]
    assert printed(capsys, headers, rows) == reference_table(headers, rows)
    assert printed(capsys, headers, rows, quiet=True) == reference_table(headers, rows, quiet=True)


def test_iso_is_isoformat_in_utc_to_the_millisecond() -> None:
    rng = random.Random(20)
    for _ in range(20_000):
        stamp = rng.uniform(-62_000_000_000, 253_000_000_000)  # years 5 to 9987
        zone = rng.choice([UTC, timezone(timedelta(minutes=rng.randint(-1439, 1439)))])
        dt = datetime.fromtimestamp(stamp, zone)
        dt = dt.replace(microsecond=rng.choice([0, 999, 1000, 999_999, dt.microsecond]))
        assert iso(dt) == reference_iso(dt)
        assert parse_iso(iso(dt)) == dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    naive = datetime(2026, 12, 1, 3, 17, 59, 810_500)  # local time, as astimezone reads it
    assert iso(naive) == reference_iso(naive)


def test_collector_paused_restores_the_state_it_found() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("the block failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


def test_ls_prints_the_plain_table_of_its_listing(vault: Path) -> None:
    secrets = {"app/db": ["team=core", "tier= 1  "], "app/api": [], "gone": ["x=y"],
               "a-much-longer-name/of/a/secret": ["b=", "a=z"]}  # fmt: skip
    for name, tags in secrets.items():
        args = [arg for tag in tags for arg in ("--tag", tag)]
        assert invoke(["put", name, *args], input="value").exit_code == 0
    assert invoke(["put", "app/db"], input="second").exit_code == 0
    assert invoke(["rm", "gone"]).exit_code == 0
    for args in ([], ["--deleted"], ["app/"], ["--tag", "team=core"]):
        listing = json.loads(invoke(["ls", *args, "--json"]).stdout)
        rows = [[s["name"] + (" (deleted)" if s.get("deleted") else ""), f"v{s['version']}",
                 s["updated_at"], ",".join(f"{k}={v}" for k, v in sorted(s["tags"].items()))]
                for s in listing]  # fmt: skip
        assert invoke(["ls", *args]).stdout == reference_table(
            ["NAME", "VERSION", "UPDATED", "TAGS"], rows
        )
        assert invoke(["-q", "ls", *args]).stdout == reference_table([], rows, quiet=True)
    every = invoke(["ls", "--deleted"]).stdout
    assert "gone (deleted)" in every and "tier= 1  " not in every  # the last cell: rstrip'd
    assert "a=z,b=" in every and "gone" not in invoke(["ls"]).stdout
