"""One time budget per operation on a remote environment (profile `timeout:`,
default 30 s), shared by every request of the operation, its retries and the
clean-up after a failure, instead of a stack of per-request timeouts.

The hangs are real: a loopback proxy in front of a real OpenBao or moto server
accepts a request and holds it (the client sees silence), and forwards it when
released, as a server that resumes would apply it. The budget is 2 s; the
commands run as real processes with a guard of ten times the budget, which the
old stack of timeouts (24 to 37 s) overran. Nothing here measures time."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.aws_env import FakeEndpoint
from helpers.aws_env import write_profile as write_aws_profile
from helpers.cli import invoke, run_cli
from helpers.loopback_proxy import LoopbackProxy
from helpers.moto_server import FAKE_CREDENTIALS, REGION, MotoServer
from helpers.openbao_server import OpenBao
from helpers.vault_env import unique_prefix, vault_env, write_profile

BUDGET_S = 2
GUARD_S = 10 * BUDGET_S  # a hang guard, not a measurement
VALUE = "value-canary-77e1"
MOVE = "secretsmanager.UpdateSecretVersionStage"


def cli(args: list[str], value: str = VALUE) -> subprocess.CompletedProcess[bytes]:
    """The CLI as a real process, stopped (the test fails) after GUARD_S."""
    return run_cli(args, input=value.encode(), timeout=GUARD_S)


def json_error(result: subprocess.CompletedProcess[bytes], code: int) -> dict[str, Any]:
    assert result.returncode == code, result.stderr
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr and VALUE not in stderr, stderr
    error: dict[str, Any] = json.loads(stderr.strip().splitlines()[-1])
    assert error["exit_code"] == code, error
    return error


# --- the profile key ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"), [("2", "2s"), ("2.5", "2.5s"), ('"45s"', "45s"), ('"2m"', "120s")]
)
def test_timeout_in_the_profile(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, text: str, shown: str
) -> None:
    path = write_profile(isolated, monkeypatch, {"staging": vault_env("http://127.0.0.1:1", "p")})
    path.write_text(path.read_text() + f"    timeout: {text}\n")
    status = json.loads(invoke(["status", "--json"]).stdout)
    assert status["environments"]["staging"]["timeout"] == shown


def test_the_default_budget_is_30_seconds(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_profile(isolated, monkeypatch, {"staging": vault_env("http://127.0.0.1:1", "p")})
    status = json.loads(invoke(["status", "--json"]).stdout)
    assert status["environments"]["staging"]["timeout"] == "30s"


@pytest.mark.parametrize("text", ["0", "-1", "0.5", "7200", '"2h"', '"soon"', "true", ".nan"])
@pytest.mark.parametrize("backend", ["vault", "aws"])
def test_a_timeout_out_of_range_is_refused(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, text: str, backend: str
) -> None:
    env = (
        vault_env("http://127.0.0.1:1", "p")
        if backend == "vault"
        else {"backend": "aws", "region": REGION}
    )
    path = write_profile(isolated, monkeypatch, {"staging": env})
    path.write_text(path.read_text() + f"    timeout: {text}\n")
    line = len(path.read_text().splitlines())
    result = invoke(["ls", "-e", "staging"])
    assert result.exit_code == 2, result.stderr
    assert f"bsecrets.yaml:{line}: environments.staging.timeout: must be 1 to 3600 seconds" in (
        result.stderr
    )


# --- Vault ---------------------------------------------------------------------------


@pytest.fixture
def vault_proxy(isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao) -> Any:
    """'staging' on OpenBao through the proxy, with a budget of 2 s; yields (proxy, prefix)."""
    prefix = unique_prefix("budget")
    with LoopbackProxy(openbao.address) as proxy:
        env = vault_env(proxy.address, prefix, timeout=BUDGET_S)
        write_profile(isolated, monkeypatch, {"staging": env})
        monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
        yield proxy, prefix


def test_a_hung_vault_ends_the_command_within_its_budget(vault_proxy: Any) -> None:
    proxy, _prefix = vault_proxy
    proxy.stall(count=None)  # every request: accepted, never answered
    error = json_error(cli(["put", "db", "-e", "staging", "--json"]), 6)
    assert "the time budget of 2 s (environments.staging.timeout) ran out" in error["error"]
    assert error["applied"] == "no" and "the write was not applied" in error["error"]
    assert "environments.staging.timeout" in error["hint"]


def test_a_vault_write_lost_in_flight_may_have_been_applied(
    vault_proxy: Any, openbao: OpenBao
) -> None:
    """The value write is held past the budget: bsecrets cannot know whether it will be
    applied, and says so; once the server goes on, it is."""
    proxy, prefix = vault_proxy
    assert invoke(["put", "db", "-e", "staging"], input="first").exit_code == 0
    proxy.stall(method="POST", path=f"/v1/secret/data/{prefix}/db")
    error = json_error(cli(["put", "db", "-e", "staging", "--json"]), 6)
    assert error["applied"] == "unknown", error
    assert "writing secret 'db'" in error["error"]
    assert "the write may have been applied: check with 'bsecrets history db" in error["error"]
    proxy.release()  # the server resumes: the held write lands
    current = openbao.client().secrets.kv.v2.read_secret_version(
        f"{prefix}/db", raise_on_deleted_version=True
    )["data"]
    assert (current["metadata"]["version"], current["data"]) == (2, {"value": VALUE})


# --- AWS -----------------------------------------------------------------------------


@pytest.fixture
def aws_proxy(vault: Path, aws: MotoServer) -> Any:
    """'prod' on moto through the proxy, with a budget of 2 s; yields the proxy."""
    with LoopbackProxy(aws.endpoint) as proxy:
        write_aws_profile(vault, region=REGION, prefix="app/", endpoint_url=proxy.address)
        path = vault / "bsecrets.yaml"
        path.write_text(path.read_text() + f"    timeout: {BUDGET_S}\n")
        yield proxy


def _current_value(aws: MotoServer) -> str:
    sm = aws.client("secretsmanager")
    return str(sm.get_secret_value(SecretId="app/db", VersionStage="AWSCURRENT")["SecretString"])


def test_a_timeout_on_the_awscurrent_move_is_the_error_reported(
    aws_proxy: LoopbackProxy, aws: MotoServer
) -> None:
    """The move of AWSCURRENT is held, and so is every request after it (the clean-up):
    the move's own failure is reported, within one budget, and it says the write may
    have been applied; the held move lands when the server resumes."""
    assert invoke(["put", "db", "-e", "prod"], input="first").exit_code == 0
    proxy = aws_proxy

    def hang_after_the_value(method: str, path: str) -> None:
        if proxy.targets and proxy.targets[-1] == "secretsmanager.PutSecretValue":
            proxy.stall(count=None)

    proxy.after = hang_after_the_value
    error = json_error(cli(["put", "db", "-e", "prod", "--json"]), 6)
    assert error["applied"] == "unknown", error
    assert "making version 2 of secret 'db' current" in error["error"]
    assert "reading" not in error["error"]  # not the clean-up's failure
    assert "the write may have been applied: check with 'bsecrets history db" in error["error"]
    assert "the time budget of 2 s (environments.prod.timeout) ran out" in error["error"]
    assert proxy.targets.count(MOVE) == 1  # a move that may have arrived is not resent
    proxy.after = None
    proxy.release()
    assert _current_value(aws) == VALUE


def test_a_silent_aws_endpoint_ends_the_command_within_its_budget(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with FakeEndpoint("silent").running() as fake:
        path = write_aws_profile(vault, region=REGION, endpoint_url=fake.endpoint)
        path.write_text(path.read_text() + f"    timeout: {BUDGET_S}\n")
        error = json_error(cli(["get", "db", "-e", "prod", "--json"]), 6)
    assert "no answer from" in error["error"] and "ReadTimeoutError" in error["error"]
    assert "the time budget of 2 s (environments.prod.timeout) ran out" in error["error"]
    assert "applied" not in error  # a read
    assert fake.requests == 1  # no retry could finish within the budget
