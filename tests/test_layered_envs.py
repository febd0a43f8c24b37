"""Layered environments (#21): exec and export take -e more than once (later wins),
each environment its own audited read; --strict refuses collisions (exit 7); render
layers for its bsecrets:///NAME references; every other command takes one -e (a
second one is exit 2, not silently the last). In-process except where exec's child
is the subject."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import assert_error, invoke, put_secret, run_cli

PY = sys.executable
NOWHERE = "/nonexistent/bsecrets-test-child"  # reaching it would be exit 127


@pytest.fixture
def layers(vault: Path) -> Path:
    """prod (the base): a, b; dev (on top): b, c."""
    put_secret("a", b"prod-a", env="prod")
    put_secret("b", b"prod-b", env="prod")
    put_secret("b", b"dev-b")
    put_secret("c", b"dev-c")
    return vault


def exported(*args: str) -> str:
    result = invoke(["export", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def events(action: str) -> list[tuple[str, list[str]]]:
    found = json.loads(invoke(["audit", "log", "--action", action, "--json"]).stdout)
    return [(e["env"], e["names"]) for e in found if e["outcome"] == "ok"]


def test_exec_layers_later_wins(layers: Path) -> None:
    code = "import json, os; print(json.dumps({k: os.environ.get(k) for k in 'ABC'}))"
    result = run_cli(["exec", "-e", "prod", "-e", "dev", "--", PY, "-c", code])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"A": "prod-a", "B": "dev-b", "C": "dev-c"}
    # one event per environment, in layer order, naming what the child got from it:
    # prod's b is shadowed, so prod never read it
    assert events("exec") == [("prod", ["a"]), ("dev", ["b", "c"])]


def test_export_layers_and_the_order_matters(layers: Path) -> None:
    assert exported("-e", "prod", "-e", "dev") == "A=prod-a\nB=dev-b\nC=dev-c\n"
    assert exported("-e", "dev", "-e", "prod") == "A=prod-a\nB=prod-b\nC=dev-c\n"
    # -e before the command layers too (a global option means the same on either side)
    result = invoke(["-e", "prod", "-e", "dev", "export", "--format", "json"])
    assert json.loads(result.stdout) == {"a": "prod-a", "b": "dev-b", "c": "dev-c"}
    assert events("export")[:2] == [("prod", ["a"]), ("dev", ["b", "c"])]
    # one -e after the command replaces those before it, as for every command
    assert invoke(["-e", "prod", "-e", "dev", "export", "-e", "prod"]).stdout == (
        "A=prod-a\nB=prod-b\n"
    )


def test_strict_refuses_a_collision_before_reading(layers: Path) -> None:
    result = invoke(["export", "-e", "prod", "-e", "dev", "--strict"])
    assert_error(result, 7, "--strict: set more than once: b (prod, dev)")
    assert "prod-b" not in result.stderr and result.stdout == ""
    assert events("export") == []
    exec_result = invoke(["exec", "-e", "prod", "-e", "dev", "--strict", "--", NOWHERE])
    assert_error(exec_result, 7, "b (prod, dev)")
    picked = ["exec", "-e", "prod", "-e", "dev", "--only", "a,c", "--strict", "--", NOWHERE]
    assert invoke(picked).exit_code == 127  # no collision among those: as far as the command
    only = invoke(["export", "-e", "prod", "-e", "dev", "--only", "a,c", "--strict"])
    assert only.stdout == "A=prod-a\nC=dev-c\n", only.stderr  # no collision among those


def test_only_picks_across_layers(layers: Path) -> None:
    assert exported("-e", "prod", "-e", "dev", "--only", "a,c") == "A=prod-a\nC=dev-c\n"
    assert exported("-e", "prod", "-e", "dev", "--only", "[bc]") == "B=dev-b\nC=dev-c\n"
    missing = invoke(["export", "-e", "prod", "-e", "dev", "--only", "a,zz"])
    assert_error(missing, 3, "no secret in the environments prod, dev matches --only 'zz'")
    assert_error(invoke(["export", "-e", "prod", "-e", "dev", "--only", "z*"]), 3, "'z*'")


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["export", "-e", "dev", "-e", "dev"], 2, "environment 'dev' is layered twice"),
        (["export", "-e", "prod", "-e", "nowhere"], 3, "unknown environment 'nowhere'"),
        (["export", "-e", "prod", "-e", "dev", "-f", "json", "--prefix", "P_"], 2, "--prefix"),
        (["exec", "-e", "prod", "-e", "dev", "--with-previous", "--", NOWHERE], 2, "one env"),
        (["render", "t.tpl", "-e", "dev", "-e", "dev"], 2, "environment 'dev' is layered twice"),
        (["render", "t.tpl", "-e", "prod", "-e", "nowhere"], 3, "unknown environment 'nowhere'"),
        (["render", "t.tpl", "-e", "prod", "-e", "dev", "--strict"], 7, "b (prod, dev)"),
    ],
)
def test_bad_layers(layers: Path, args: list[str], code: int, needle: str) -> None:
    (layers / "t.tpl").write_text("{{ bsecrets:///b }}")
    assert_error(invoke(args), code, needle)


def test_render_takes_one_e_as_before(layers: Path) -> None:
    (layers / "t.tpl").write_text("{{ bsecrets://dev/c }}")
    assert invoke(["render", "t.tpl", "-e", "prod"]).stdout == "dev-c"


def test_render_layers_its_references_without_an_environment(layers: Path) -> None:
    (layers / "t.tpl").write_text("{{ bsecrets:///a }} {{ bsecrets:///b }} {{bsecrets:///c}} "
                                  "{{ bsecrets://prod/b }}")  # fmt: skip
    result = invoke(["render", "t.tpl", "-e", "prod", "-e", "dev"])
    assert result.stdout == "prod-a dev-b dev-c prod-b", result.stderr
    # each value is read from the one environment that gives it
    gets = json.loads(invoke(["audit", "log", "--action", "get", "--json"]).stdout)
    assert [(e["env"], e["name"]) for e in gets] == [
        ("prod", "a"), ("dev", "b"), ("dev", "c"), ("prod", "b")
    ]  # fmt: skip
    assert invoke(["render", "t.tpl", "-e", "dev", "-e", "prod"]).stdout == (
        "prod-a prod-b dev-c prod-b"
    )
    # no -e: the default environment (dev), which has no a
    (layers / "u.tpl").write_text("x\n  {{ bsecrets:///b }}{{ bsecrets:///a }}")
    assert_error(invoke(["render", "u.tpl"]), 3, "u.tpl:2:22", "'a'")
    across = invoke(["render", "u.tpl", "-e", "prod", "-e", "dev"])
    assert across.stdout == "x\n  dev-bprod-a", across.stderr
    (layers / "v.tpl").write_text("{{ bsecrets:///zz }}")
    nowhere = invoke(["render", "v.tpl", "-e", "prod", "-e", "dev"])
    assert_error(nowhere, 3, "v.tpl:1:1", "'zz' is in none of the environments prod, dev")


@pytest.mark.parametrize(
    "args",
    [
        ["get", "a", "-e", "prod", "-e", "dev"],
        ["-e", "prod", "-e", "dev", "get", "a"],
        ["-e", "prod", "--env", "dev", "ls"],
        ["status", "-e", "prod", "-e", "dev"],
        ["audit", "log", "-e", "prod", "-e", "dev"],
        ["audit", "-e", "prod", "-e", "dev", "log"],
    ],
)
def test_a_second_e_elsewhere_is_exit_2(layers: Path, args: list[str]) -> None:
    result = invoke(args)
    assert_error(result, 2, "-e is given 2 times", "works in one environment")
    assert result.stderr.splitlines()[1].startswith("hint: give -e once")
    assert result.stdout == ""


def test_one_e_keeps_working_everywhere(layers: Path) -> None:
    assert invoke(["get", "a", "-e", "prod"]).stdout == "prod-a\n"
    assert invoke(["-e", "prod", "get", "a"]).stdout == "prod-a\n"
    # after the command wins over before it, even over several before it
    assert invoke(["-e", "dev", "-e", "dev", "get", "a", "-e", "prod"]).stdout == "prod-a\n"
    assert invoke(["exec", "-e", "prod", "--", NOWHERE]).exit_code == 127
    assert exported("-e", "prod") == "A=prod-a\nB=prod-b\n"
    assert exported() == "B=dev-b\nC=dev-c\n"  # the default environment


def test_commands_whose_e_is_a_list_take_the_layers_before_them(layers: Path) -> None:
    data: dict[str, Any] = json.loads(
        invoke(["-e", "prod", "-e", "dev", "token", "issue", "--json"]).stdout
    )
    assert sorted(data["envs"]) == ["dev", "prod"]  # both, not silently the last
