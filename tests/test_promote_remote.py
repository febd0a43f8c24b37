"""``bsecrets promote`` into remote environments (docs/promotion.md): a local ``dev``, a
``staging`` on a real OpenBao and a ``prod`` on moto's Secrets Manager, each remote one
behind a loopback proxy that lands a foreign write between the plan and the writes,
answers 503 from some point on, or holds a write while the promoting process is killed
(kill -9). After every failure the target holds exactly what it held before (read back
through ``bsecrets ls`` and ``get``), or ``--resume`` / ``--abort`` finish or undo it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import invoke
from helpers.loopback_proxy import LoopbackProxy
from helpers.moto_server import REGION, MotoServer
from helpers.openbao_server import OpenBao
from helpers.vault_env import unique_prefix, vault_env, write_profile

import bsecrets
from bsecrets.backends.vault.transport import MAX_ATTEMPTS

ROUTES = """promote:
  dev:
    staging:
      names: ["db/*", "api/key"]
      rename: {db/url: db/primary_url}
      never: ["*/debug"]
    prod:
      names: ["db/*", "api/key"]
      never: ["*/debug"]
  staging:
    prod:
      names: ["db/*", "api/key"]
      rename: {api/key: api/token}
"""
DEV = {
    "api/key": "key-dev-41a", "db/host": "host-dev-42b", "db/pass": "pass-dev-43c",
    "db/url": "url-dev-44d", "db/user": "user-dev-45e", "db/debug": "debug-dev-46f",
    "other/thing": "other-dev-47a",
}  # fmt: skip
STAGING = {"api/key": "key-stage-old", "db/primary_url": "url-stage-old", "keep/me": "stays-b1"}
# dev -> staging, in the order the promotion writes them (by source name)
PROMOTED = {"api/key": DEV["api/key"], "db/host": DEV["db/host"], "db/pass": DEV["db/pass"],
            "db/primary_url": DEV["db/url"], "db/user": DEV["db/user"]}  # fmt: skip
ID_IN_ERROR = re.compile(r"promotion ([0-9a-f]{12})")


def ok(args: list[str], input: str | None = None) -> str:
    result = invoke(args, input=input)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def state(env: str) -> dict[str, str]:
    """Every name of ``env`` and its current value, read back through ls and get."""
    names = [row["name"] for row in json.loads(ok(["ls", "-e", env, "--json"]))]
    return {name: ok(["get", name, "-e", env]).removesuffix("\n") for name in names}


def put_all(env: str, values: dict[str, str]) -> None:
    for name, value in values.items():
        ok(["put", name, "-e", env], input=value)


def failed(args: list[str], code: int, kind: str) -> dict[str, Any]:
    """Run a command that must fail; its --json error object."""
    result = invoke([*args, "--json"])
    assert result.exit_code == code, (result.stdout, result.stderr)
    error: dict[str, Any] = json.loads(result.stderr.strip().splitlines()[-1])
    assert error["kind"] == kind and "Traceback" not in result.stderr, error
    assert not any(v in result.stderr for v in DEV.values()), error  # never a value
    return error


def in_flight_id() -> str:
    """The id of the promotion stopped midway into staging, from the refusal of another."""
    error = failed(["promote", "--from", "dev", "--to", "staging", "--yes"], 7,
                   "promotion_in_flight")  # fmt: skip
    found = ID_IN_ERROR.search(error["error"])
    assert found and "stopped midway" in error["error"], error
    return found.group(1)


@dataclass
class Envs:
    root: Path
    openbao: OpenBao
    bao: LoopbackProxy  # in front of OpenBao: staging's address
    moto: LoopbackProxy  # in front of moto: prod's endpoint
    prefix: str  # staging's prefix in OpenBao

    @property
    def data(self) -> str:
        """Where staging's values are written (KV v2 data path)."""
        return f"/v1/secret/data/{self.prefix}/"

    def value_posts(self) -> list[str]:
        """The secrets whose value staging was asked to write, in order."""
        return [p.removeprefix(self.data) for m, p in self.bao.requests
                if m == "POST" and p.startswith(self.data)]  # fmt: skip

    def server_back(self) -> None:
        """Staging straight at OpenBao: the server is reachable again."""
        profile = self.root / "bsecrets.yaml"
        profile.write_text(profile.read_text().replace(self.bao.address, self.openbao.address))

    def once(self, when: Callable[[str, str], bool], then: Callable[[], None]) -> None:
        """``then()`` right after the first request matching ``when`` was answered."""
        fired: list[bool] = []

        def hook(method: str, path: str) -> None:
            if not fired and when(method, path):
                fired.append(True)
                then()

        self.bao.after = hook


@pytest.fixture
def envs(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao, aws: MotoServer
) -> Iterator[Envs]:
    """dev (local) holding DEV, staging (OpenBao) holding STAGING, prod (moto) empty."""
    prefix = unique_prefix("promote")
    with LoopbackProxy(openbao.address) as bao, LoopbackProxy(aws.endpoint) as moto:
        prod = {"backend": "aws", "region": REGION, "prefix": f"{unique_prefix('promote')}/",
                "endpoint_url": moto.address}  # fmt: skip
        path = write_profile(isolated, monkeypatch, {"staging": vault_env(bao.address, prefix),
                                                     "prod": prod})  # fmt: skip
        path.write_text(path.read_text() + ROUTES)
        monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
        put_all("dev", DEV)
        put_all("staging", STAGING)
        bao.requests.clear()
        yield Envs(isolated, openbao, bao, moto, prefix)
        bao.after = moto.after = None


def promote(source: str, target: str, *more: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(ok(["promote", "--from", source, "--to", target,
                                         "--yes", "--json", *more]))  # fmt: skip
    return out


# --- 1. the whole way: local -> OpenBao -> moto ------------------------------------------


def test_dev_to_staging_to_prod_with_renames(envs: Envs) -> None:
    done = promote("dev", "staging")["promotion"]
    assert done["step"] == "done"
    assert [(i["source"], i["target"], i["action"]) for i in done["items"]] == [
        ("api/key", "api/key", "change"), ("db/host", "db/host", "add"),
        ("db/pass", "db/pass", "add"), ("db/url", "db/primary_url", "change"),
        ("db/user", "db/user", "add"),
    ]  # fmt: skip
    assert state("staging") == {**STAGING, **PROMOTED}  # no db/debug (never), no other/thing
    plan = promote("staging", "prod")["plan"]
    assert {i["source"]: i["action"] for i in plan["items"]}["keep/me"] == "skipped"
    renamed = {("api/token" if k == "api/key" else k): v for k, v in PROMOTED.items()}
    assert state("prod") == renamed
    log = {row["to"]: row for row in json.loads(ok(["promote", "log", "--json"]))}
    assert (log["staging"]["from"], log["prod"]["from"]) == ("dev", "staging")
    assert all(row["outcome"] == "ok" for row in log.values())
    versions = {to: {(s["from_name"], s["name"], s["from_version"], s["to_version"])
                     for s in row["secrets"]} for to, row in log.items()}  # fmt: skip
    assert versions["staging"] == {
        ("api/key", "api/key", 1, 2), ("db/host", "db/host", 1, 1), ("db/pass", "db/pass", 1, 1),
        ("db/url", "db/primary_url", 1, 2), ("db/user", "db/user", 1, 1),
    }  # fmt: skip
    assert versions["prod"] == {
        ("api/key", "api/token", 2, 1), ("db/host", "db/host", 1, 1),
        ("db/pass", "db/pass", 1, 1), ("db/primary_url", "db/primary_url", 2, 1),
        ("db/user", "db/user", 1, 1),
    }  # fmt: skip


# --- 2. a foreign write between the plan and the writes ----------------------------------


def test_a_foreign_write_midway_is_exit_7_and_the_rest_is_undone(envs: Envs) -> None:
    before = state("staging")

    def foreign_write() -> None:  # straight to OpenBao, not through the proxy
        envs.openbao.client().secrets.kv.v2.create_or_update_secret(
            path=f"{envs.prefix}/db/primary_url", secret={"value": "theirs-9d"}
        )

    envs.once(lambda m, p: m == "POST" and p.startswith(envs.data), foreign_write)
    error = failed(["promote", "--from", "dev", "--to", "staging", "--yes"], 7, "version_conflict")
    assert "stopped at 'db/primary_url'" in error["error"]
    assert "undone: api/key, db/host, db/pass" in error["error"]
    assert "NOT undone" not in error["error"] and error["applied"] == "no"
    # written: api/key, db/host, db/pass; then the conflict; then the undo of api/key
    assert envs.value_posts() == ["api/key", "db/host", "db/pass", "api/key"]
    assert state("staging") == {**before, "db/primary_url": "theirs-9d"}
    promote("dev", "staging")  # nothing was left in flight: the next one goes through
    assert state("staging") == {**before, **PROMOTED}


# --- 3. OpenBao stops answering after the first of five writes ---------------------------


def test_vault_unavailable_after_the_first_write_is_exit_6_and_undone(envs: Envs) -> None:
    before = state("staging")
    envs.once(
        lambda m, p: m == "POST" and p.startswith(envs.data),
        lambda: envs.bao.fail_next(*[503] * MAX_ATTEMPTS, method="POST", path=envs.data),
    )
    error = failed(["promote", "--from", "dev", "--to", "staging", "--yes"], 6,
                   "backend_unavailable")  # fmt: skip
    assert "stopped at 'db/host'" in error["error"] and "undone: api/key" in error["error"]
    assert "NOT undone" not in error["error"] and error["applied"] == "no"
    assert envs.value_posts() == ["api/key", *["db/host"] * MAX_ATTEMPTS, "api/key"]
    assert state("staging") == before
    row = json.loads(ok(["promote", "log", "--json"]))[-1]
    assert row["outcome"] != "ok" and row["undone"] == ["api/key"]


# --- 4. OpenBao down for good midway: the undo cannot complete ---------------------------


def go_down_after_first_write(envs: Envs) -> str:
    """The promotion into staging, OpenBao answering 503 to everything once the first
    write (value and author) is done; returns the id of the promotion left in flight."""
    envs.once(
        lambda m, p: m == "PATCH", lambda: envs.bao.fail_next(*[503] * 1000)
    )  # every request from then on
    error = failed(["promote", "--from", "dev", "--to", "staging", "--yes"], 6,
                   "backend_unavailable")  # fmt: skip
    assert "stopped at 'db/host'" in error["error"] and "undone: nothing;" in error["error"]
    assert "api/key" in error["error"].split("NOT undone")[1] and error["applied"] == "yes"
    assert "--resume" in error["hint"] and "--abort" in error["hint"]
    found = ID_IN_ERROR.search(error["error"])
    assert found, error
    envs.server_back()
    assert in_flight_id() == found.group(1)  # another promotion into staging: exit 7
    return found.group(1)


def test_vault_down_for_good_then_abort_puts_everything_back(envs: Envs) -> None:
    before = state("staging")
    promotion_id = go_down_after_first_write(envs)
    assert state("staging") == {**before, "api/key": DEV["api/key"]}  # written, not undone
    done = json.loads(ok(["promote", "--abort", promotion_id, "--json"]))["promotion"]
    assert done["step"] == "undone"
    assert state("staging") == before
    assert invoke(["promote", "--resume", promotion_id]).exit_code == 7  # nothing in flight


def test_vault_down_for_good_then_resume_finishes(envs: Envs) -> None:
    before = state("staging")
    promotion_id = go_down_after_first_write(envs)
    done = json.loads(ok(["promote", "--resume", promotion_id, "--json"]))["promotion"]
    assert done["step"] == "done"
    assert state("staging") == {**before, **PROMOTED}


def test_an_undo_that_stopped_halfway_is_finished_by_abort_not_resume(envs: Envs) -> None:
    """Two writes land, the third is refused (503), the undo purges db/host and then
    OpenBao goes down before api/key is put back. --resume is refused (exit 7: the
    versions the plan saw are gone for what was undone); --abort finishes the undo,
    and a new promotion then writes everything."""
    before = state("staging")
    proxy = envs.bao

    def hook(method: str, path: str) -> None:
        if (method, path) == ("POST", envs.data + "db/host"):  # the second write landed
            proxy.fail_next(*[503] * MAX_ATTEMPTS, method="POST", path=envs.data)
        elif method == "DELETE":  # the undo purged db/host: down for good from now on
            proxy.after = None
            proxy.fail_next(*[503] * 1000)

    proxy.after = hook
    error = failed(["promote", "--from", "dev", "--to", "staging", "--yes"], 6,
                   "backend_unavailable")  # fmt: skip
    assert "undone: db/host" in error["error"] and "NOT undone" in error["error"]
    envs.server_back()
    promotion_id = in_flight_id()
    refused = invoke(["promote", "--resume", promotion_id])
    assert refused.exit_code == 7 and "partly undone (db/host)" in refused.stderr
    assert f"promote --abort {promotion_id}" in refused.stderr
    ok(["promote", "--abort", promotion_id])
    assert state("staging") == before
    ok(["promote", "--from", "dev", "--to", "staging", "--yes"])
    assert state("staging") == {**before, **PROMOTED}


# --- 5. kill -9 while the third write is held, then resume or abort ----------------------


@pytest.mark.parametrize("action", ["resume", "abort"])
def test_kill_midway_then_resume_or_abort(envs: Envs, action: str) -> None:
    before = state("staging")
    envs.bao.stall(method="POST", path=envs.data + "db/pass")  # the third write
    code_root = str(Path(bsecrets.__file__).resolve().parents[1])
    child = subprocess.Popen(
        [sys.executable, "-m", "bsecrets", "promote", "--from", "dev", "--to", "staging",
         "--yes"],
        cwd=envs.root, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": code_root},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60  # a hang guard, far past what it needs
        while envs.bao.held != 1:
            assert child.poll() is None, "the promotion ended before its third write"
            assert time.monotonic() < deadline, "the third write never came"
            time.sleep(0.05)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    envs.bao.release()  # the server goes on: the held write lands after the kill
    assert envs.value_posts() == ["api/key", "db/host", "db/pass"]
    promotion_id = in_flight_id()
    done = json.loads(ok(["promote", f"--{action}", promotion_id, "--json"]))["promotion"]
    if action == "resume":
        assert done["step"] == "done"
        assert state("staging") == {**before, **PROMOTED}
        assert envs.value_posts().count("db/pass") == 1  # the landed write is not redone
    else:
        assert done["step"] == "undone"
        assert state("staging") == before


# --- 6. AWS: PutSecretValue refused (503) after the first write --------------------------


def test_aws_unavailable_after_the_first_write_is_exit_6_and_undone(envs: Envs) -> None:
    put_all("prod", {"api/key": "key-prod-old", "db/host": "host-prod-old"})
    before = state("prod")
    proxy, put_value = envs.moto, "secretsmanager.PutSecretValue"

    def refuse_the_second_value(method: str, path: str) -> None:
        # the second write's ListSecretVersionIds answered: its PutSecretValue comes next
        if proxy.targets.count(put_value) == 1 and proxy.targets[-1].endswith("VersionIds"):
            proxy.after = None
            proxy.fail_next(503, 503, 503, method="POST")  # botocore's three attempts

    proxy.after = refuse_the_second_value
    error = failed(["promote", "--from", "dev", "--to", "prod", "--yes"], 6,
                   "backend_unavailable")  # fmt: skip
    assert "stopped at 'db/host'" in error["error"] and "undone: api/key" in error["error"]
    assert "NOT undone" not in error["error"]
    assert proxy.targets.count(put_value) == 5  # two writes, three refused, one undo
    assert state("prod") == before


# --- 7. a dry run writes nothing -----------------------------------------------------------


def test_a_dry_run_into_a_remote_env_writes_nothing(envs: Envs) -> None:
    before = state("staging")
    envs.bao.requests.clear()  # the reads of state()
    plan = json.loads(ok(["promote", "--from", "dev", "--to", "staging", "--dry-run",
                          "--json"]))["plan"]  # fmt: skip
    assert plan["counts"] == {"add": 3, "change": 2, "same": 0, "skipped": 2}
    assert {m for m, _ in envs.bao.requests} <= {"GET", "LIST"}
    assert state("staging") == before
    events = [e for e in json.loads(ok(["audit", "log", "--json"]))
              if (e.get("details") or {}).get("id") == plan["id"]]  # fmt: skip
    assert [(e["action"], e["details"]["step"], e["outcome"]) for e in events] == [
        ("promote", "plan", "ok")
    ]
    assert json.loads(ok(["promote", "log", "--json"])) == []
