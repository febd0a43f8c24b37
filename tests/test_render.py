"""render: references resolved before anything is written, exact bytes out,
0600 atomic output, each bad template with its exit code and location."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke, put_secret, run_cli
from helpers.values import CANARY

from bsecrets.errors import UsageError
from bsecrets.run.template import parse

put = put_secret


def assert_error(result: object, code: int, *needles: str) -> None:
    stderr = result.stderr  # type: ignore[attr-defined]
    if isinstance(stderr, bytes):
        stderr = stderr.decode()
    code_seen = getattr(result, "exit_code", None)
    if code_seen is None:
        code_seen = result.returncode  # type: ignore[attr-defined]
    assert code_seen == code, stderr
    assert stderr.startswith("error: "), stderr
    assert len([ln for ln in stderr.splitlines() if ln.startswith("error:")]) == 1
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in stderr, stderr


# --- the grammar -----------------------------------------------------------------


def test_parse_forms() -> None:
    text = (
        "a {{ bsecrets://dev/db/url }}\n"
        "b {{bsecrets://prod/x#v3}} c {{ bsecrets://dev/kv#user }} "
        "{{ bsecrets://dev/kv#v2#pass }} {{ bsecrets://dev/kv#pass#v2 }}"
        " {{ bsecrets:///db/url#v2 }}"
    )
    refs = parse(text, "t")
    assert [(r.env, r.name, r.version) for r in refs] == [
        ("dev", "db/url", None),
        ("prod", "x", 3),
        ("dev", "kv#user", None),
        ("dev", "kv#pass", 2),
        ("dev", "kv#pass", 2),
        ("", "db/url", 2),  # no environment: render's -e layers, else the default
    ]
    assert (refs[1].line, refs[1].column) == (2, 3)


def test_other_braces_left_alone() -> None:
    assert parse("{{ .Values.x }} {{ bsecrets }} {{bsecretsX}}", "t") == []


@pytest.mark.parametrize(
    ("text", "line", "column", "why"),
    [
        ("{{ bsecrets://dev/x }", 1, 1, "expected"),
        ("ok\n  {{ bsecrets://dev }}", 2, 3, "ENV/NAME"),
        ("ok\nok\nxx{{ bsecrets:dev/x }}", 3, 3, "expected"),
        ("{{ bsecrets://Dev/x }}", 1, 1, "environment name"),
        ("{{ bsecrets://dev/.x }}", 1, 1, "secret name"),
        ("{{ bsecrets://dev/x y }}", 1, 1, "expected"),
        ("{{ bsecrets://dev/x#v0 }}", 1, 1, "versions start at 1"),
        ("{{ bsecrets://dev/x#v1#v2 }}", 1, 1, "more than one #vN"),
        ("{{ bsecrets://dev/x#a#b }}", 1, 1, "more than one #field"),
        ("{{ bsecrets://dev/x# }}", 1, 1, "empty"),
        ("{{ bsecrets://dev/x", 1, 1, "expected"),
        ("{{ bsecrets://dev/x#v" + "9" * 5000 + " }}", 1, 1, "version number is too large"),
        ("{{ bsecrets://dev/x password=hunter2-canary", 1, 1, "expected"),
        ("{{ bsecrets:/// }}", 1, 1, "secret name"),
        ("{{ bsecrets:////x }}", 1, 1, "secret name"),
    ],
)
def test_malformed(text: str, line: int, column: int, why: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(text, "tpl")
    assert info.value.message.startswith(f"tpl:{line}:{column}: malformed reference"), info.value
    assert why in info.value.message
    assert "canary" not in info.value.message and "9" * 20 not in info.value.message


# --- the command -------------------------------------------------------------------


def test_render_to_stdout(vault: Path) -> None:
    put("db/url", b"postgres://u:p@h/db")
    put("token", CANARY.encode())
    (vault / "t.tpl").write_text(
        "url={{ bsecrets://dev/db/url }}\ntok={{bsecrets://dev/token}} {{ keep }}\n"
    )
    result = run_cli(["render", "t.tpl"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"url=postgres://u:p@h/db\ntok={CANARY} {{{{ keep }}}}\n".encode()
    assert CANARY.encode() not in result.stderr


def test_render_stdin_and_dash(vault: Path) -> None:
    put("token", b"tok-1")
    result = run_cli(["render", "-", "-o", "-"], input=b"x={{ bsecrets://dev/token }}")
    assert result.stdout == b"x=tok-1"


def test_render_version(vault: Path) -> None:
    put("token", b"first")
    put("token", b"second")
    (vault / "t.tpl").write_text("{{ bsecrets://dev/token#v1 }} {{ bsecrets://dev/token }}")
    assert run_cli(["render", "t.tpl"]).stdout == b"first second"


def test_render_other_environment(vault: Path) -> None:
    put("token", b"dev-value")
    put("token", b"prod-value", env="prod")
    (vault / "t.tpl").write_text("{{ bsecrets://dev/token }}/{{ bsecrets://prod/token }}")
    assert run_cli(["render", "t.tpl"]).stdout == b"dev-value/prod-value"


def test_render_exact_bytes(vault: Path) -> None:
    value = "multi\nline 'q' \"d\" $(x) `y` ünï\n".encode() + b"\xff"
    put("blob", value)
    (vault / "t.tpl").write_bytes(b"[{{ bsecrets://dev/blob }}] \xfe")
    assert run_cli(["render", "t.tpl"]).stdout == b"[" + value + b"] \xfe"


def test_render_to_file_0600(vault: Path) -> None:
    put("token", b"tok-1")
    (vault / "t.tpl").write_text("x={{ bsecrets://dev/token }}\n")
    out = vault / "out" / "app.conf"
    result = run_cli(["render", "t.tpl", "-o", str(out)])
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == b"x=tok-1\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["app.conf"]  # no temp file left
    # overwrite in place, still 0600
    out.chmod(0o644)
    assert run_cli(["render", "t.tpl", "-o", str(out)]).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_malformed_reference_exit_2_line_column(vault: Path) -> None:
    put("token", b"tok-1")
    (vault / "t.tpl").write_text(
        "ok={{ bsecrets://dev/token }}\n  x={{ bsecrets://dev/bad name }}\n"
    )
    out = vault / "out.conf"
    result = run_cli(["render", "t.tpl", "-o", str(out)])
    assert_error(result, 2, "t.tpl:2:5:", "malformed reference", "hint:")
    assert not out.exists()
    assert b"tok-1" not in result.stdout + result.stderr


def test_missing_reference_exit_3_no_file(vault: Path) -> None:
    put("token", b"tok-1")
    (vault / "t.tpl").write_text("a={{ bsecrets://dev/token }}\nb={{ bsecrets://dev/nope }}\n")
    out = vault / "out.conf"
    result = run_cli(["render", "t.tpl", "-o", str(out)])
    assert_error(result, 3, "t.tpl:2:3:", "'nope'")
    assert not out.exists()
    assert list(vault.glob(".out.conf*")) == []
    assert result.stdout == b""  # nothing half-written to stdout either


def test_missing_reference_keeps_existing_file(vault: Path) -> None:
    out = vault / "out.conf"
    out.write_text("old")
    (vault / "t.tpl").write_text("{{ bsecrets://dev/nope }}")
    assert run_cli(["render", "t.tpl", "-o", str(out)]).returncode == 3
    assert out.read_text() == "old"


def test_missing_version_exit_3(vault: Path) -> None:
    put("token", b"tok-1")
    (vault / "t.tpl").write_text("{{ bsecrets://dev/token#v9 }}")
    assert_error(run_cli(["render", "t.tpl"]), 3, "t.tpl:1:1:")


def test_unknown_environment_exit_3(vault: Path) -> None:
    (vault / "t.tpl").write_text("{{ bsecrets://staging/token }}")
    assert_error(run_cli(["render", "t.tpl"]), 3, "staging")


def test_field_on_local_backend_exit_2(vault: Path) -> None:
    put("token", b"tok-1")
    (vault / "t.tpl").write_text("{{ bsecrets://dev/token#user }}")
    assert_error(run_cli(["render", "t.tpl"]), 2, "t.tpl:1:1:", "no fields")


def test_template_not_readable(vault: Path) -> None:
    assert_error(run_cli(["render", "nope.tpl"]), 2, "cannot read the template")


def test_denied_environment_exit_4(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: Any
) -> None:
    """A reference to an environment the caller cannot read (a real Vault token
    whose policy does not cover it): exit 4 from the server, nothing written."""
    from helpers.vault_env import unique_prefix, vault_env, write_profile

    prefix = unique_prefix("render")
    root = openbao.client()
    root.secrets.kv.v2.create_or_update_secret(f"{prefix}/token", {"value": "prod-value"})
    weak = root.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    write_profile(isolated, monkeypatch, {"prod": vault_env(openbao.address, prefix)})
    monkeypatch.setenv("VAULT_TOKEN", weak)
    put("token", b"dev-value")
    (isolated / "t.tpl").write_text("{{ bsecrets://dev/token }} {{ bsecrets://prod/token }}")
    out = isolated / "out.conf"
    result = invoke(["render", "t.tpl", "-o", str(out)])
    assert_error(result, 4)
    assert "prod-value" not in result.stdout + result.stderr
    assert not out.exists()


def test_locked_vault_exit_4(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put("token", b"tok-1")
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    (vault / "t.tpl").write_text("{{ bsecrets://dev/token }}")
    out = vault / "out.conf"
    assert_error(invoke(["render", "t.tpl", "-o", str(out)]), 4, "locked")
    assert not out.exists()


def test_no_references_needs_no_profile(isolated: Path) -> None:
    (isolated / "t.tpl").write_text("plain {{ x }}")
    assert run_cli(["render", "t.tpl"]).stdout == b"plain {{ x }}"
