"""docs/runbooks/ (issue #19): every command of every runbook, run for real.

Each ```sh block of a runbook follows a line ``<!-- test: RUNBOOK/STEP -->`` and runs
here, line by line, in that runbook's scenario (a vault whose secret was read, a Vault
environment on a closed port, a tampered audit event, custodians with authenticators,
an owner whose passphrase is gone). A block is a shell of its own (the STEP says who
types it: its environment); ``bsecrets`` lines go through the real CLI in-process
(``exec`` as a real process), other lines through ``sh``. Words in capitals are the
scenario's placeholders; a line ending in ``# exit N`` must exit N, any other 0.

The test fails when a runbook holds a ``bsecrets`` command its scenario did not run
(the command lines of every fenced block, counted against the lines run; every inline
`bsecrets ...` must start a command of a block), when a block has no known step, a
step is not used, or a relative link or heading does not resolve. Each scenario then
checks what its commands found: the read the audit log shows, the fallback's value,
the evidence copied before anything wrote to the vault.

docs/runbooks/README.md states these rules for the runbooks' authors.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest
from helpers.cli import Result, invoke
from helpers.file_keyring import FileKeyring, file_keyring  # noqa: F401
from helpers.openbao_server import OpenBao
from helpers.totp import Authenticator
from helpers.values import PASSPHRASE
from helpers.vault_env import unique_prefix, vault_env, write_profile
from test_break_glass import (
    PASS,
    SECRET,
    mfa,  # noqa: F401 - the custodians enrolled (test_break_glass's fixture)
    team,  # noqa: F401 - principals and prod's 2-of-3 break-glass (test_break_glass's)
)

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "docs" / "runbooks"
RUNBOOKS = ("lost-passphrase", "leaked-secret", "backend-down", "audit-verify-failed",
            "break-glass")  # fmt: skip
UNTESTED_INLINE = {"bsecrets doctor"}  # being written by another engineer (issue #19)
MARKER = re.compile(r"<!-- test: ([a-z-]+)/([a-z-]+) -->")
COMMAND = re.compile(r'^(?:[A-Z_]+=\S*\s+)*(?:eval "\$\()?(bsecrets\b.*?)(?:\)")?$')
INLINE = re.compile(r"`(bsecrets\s[^`]+)`")  # in the text, over a line break too
NEW_PASSPHRASE = "the new vault's passphrase 9c"


# --- reading the runbooks ---------------------------------------------------------------


class Line(NamedTuple):
    where: str  # FILE:LINE
    text: str  # the command, without its comment
    exit: int  # '# exit N', else 0


class Block(NamedTuple):
    where: str
    runbook: str | None  # from the marker; None: no marker
    step: str | None
    lines: list[Line]


def split_comment(text: str) -> tuple[str, str]:
    """The command and its trailing comment (a '#' outside quotes, after a blank)."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1 :].strip()
    return text.rstrip(), ""


def parse(path: Path) -> tuple[list[Block], list[Line], list[str]]:
    """The ```sh blocks; every command line of any fenced block; inline `bsecrets ...`."""
    blocks, commands, prose = [], [], []
    lines = path.read_text().splitlines()
    fence: str | None = None
    current: list[Line] = []
    marker: re.Match[str] | None = None
    for number, raw in enumerate(lines, 1):
        where = f"{path.name}:{number}"
        if fence is None and raw.startswith("```"):
            fence, current = raw[3:].strip(), []
            before = [x for x in lines[: number - 1] if x.strip()]
            marker = MARKER.fullmatch(before[-1].strip()) if before else None
            start = where
        elif fence is not None and raw.strip() == "```":
            if fence == "sh":
                blocks.append(Block(start, *(marker.groups() if marker else (None, None)),
                                    current))  # fmt: skip
            fence = None
        elif fence is not None:
            text, comment = split_comment(raw.strip())
            found = re.search(r"\bexit (\d+)\b", comment)
            line = Line(where, text, int(found[1]) if found else 0)
            if text and COMMAND.match(text):
                commands.append(line)
            if text and fence == "sh":
                current.append(line)
        else:
            prose.append(raw)
    return blocks, commands, [" ".join(s.split()) for s in INLINE.findall("\n".join(prose))]


def command_part(text: str) -> list[str]:
    """The words of a command line from 'bsecrets' on (no prefix, eval or redirection)."""
    words = shlex.split(COMMAND.match(text)[1])  # type: ignore[index]
    return words[: words.index(">")] if ">" in words else words


# --- running them -------------------------------------------------------------------------

Sub = str | list[str] | Callable[[dict[str, str]], str]


@dataclass
class Step:
    env: dict[str, str | None] = field(default_factory=dict)  # the shell's, over os.environ
    subs: dict[str, Sub] = field(default_factory=dict)  # over the scenario's
    before: Callable[[], None] | None = None


@dataclass
class Scenario:
    runbook: str
    steps: dict[str, Step]
    subs: dict[str, Sub]
    captures: dict[str, tuple[str, Callable[[str], str]]] = field(default_factory=dict)
    ran: list[tuple[Line, str, Result]] = field(default_factory=list)

    def results(self, fragment: str) -> list[Result]:
        """What the lines whose command (substituted) holds ``fragment`` gave."""
        return [result for _, text, result in self.ran if fragment in text]


def bindings(text: str, subs: dict[str, Sub]) -> Iterator[dict[str, str]]:
    """One binding per value of a list placeholder in ``text`` (CUSTODIAN: each of M)."""
    fixed = {k: v for k, v in subs.items() if isinstance(v, str)}
    lists = [(k, v) for k, v in subs.items() if isinstance(v, list) and has(text, k)]
    if not lists:
        yield fixed
        return
    (key, values), *more = lists
    assert not more, f"one list placeholder per line: {text}"
    for value in values:
        yield {**fixed, key: value}


def placeholders(keys: Iterable[str]) -> re.Pattern[str]:
    """The placeholders as whole words ('ENV' not in 'BSECRETS_ENV')."""
    names = "|".join(sorted(map(re.escape, keys), key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9_])(?:{names})(?![A-Za-z0-9_])")


def documented() -> set[str]:
    """The placeholders the runbooks' README lists (its table's first column)."""
    text = (FOLDER / "README.md").read_text()
    rows = text[text.index("| placeholder |") :].splitlines()[2:]
    return {
        w
        for row in rows
        if row.startswith("|")
        for w in re.findall(r"`([A-Z_]+)`", row.split("|")[1])
    }


def has(text: str, key: str) -> bool:
    return placeholders([key]).search(text) is not None


def substitute(text: str, bound: dict[str, str], subs: dict[str, Sub]) -> str:
    def value(found: re.Match[str]) -> str:
        sub = subs[found[0]]
        return sub(bound) if callable(sub) else bound[found[0]]

    return placeholders(subs).sub(value, text)


def full_env(env: dict[str, str | None]) -> dict[str, str]:
    merged = {**os.environ, **env}
    return {k: v for k, v in merged.items() if v is not None}


def bsecrets(words: list[str], env: dict[str, str | None], prefix: dict[str, str]) -> Result:
    """One bsecrets command: --as NAME unlocks with NAME's passphrase (its own shell)."""
    env = {**env, **prefix}
    if "--as" in words and "BSECRETS_PASSPHRASE" not in prefix:
        env["BSECRETS_PASSPHRASE"] = PASS.get(words[words.index("--as") + 1])
    target = None
    if ">" in words:
        target, words = Path(words[words.index(">") + 1]), words[: words.index(">")]
    if "--" in words and "exec" in words[1 : words.index("--")]:  # it replaces its process
        done = subprocess.run([sys.executable, "-m", "bsecrets", *words[1:]], env=full_env(env),
                              capture_output=True, timeout=120, check=False)  # fmt: skip
        result = Result(done.returncode, done.stdout.decode(), done.stderr.decode(), done.stdout)
    else:
        result = invoke(words[1:], env=env)  # type: ignore[arg-type]
    if target is not None:
        target.write_text(result.stdout)
    return result


def execute(text: str, env: dict[str, str | None]) -> Result:
    """One line in the block's shell (``env`` is that shell's, changed in place)."""
    words = shlex.split(text)
    if words[0] in ("export", "unset"):
        for word in words[1:]:
            key, _, value = word.partition("=")
            env[key] = value if words[0] == "export" else None
        return Result(0, "", "", b"")
    evaluated = re.fullmatch(r'eval "\$\((bsecrets .*)\)"', text)
    if evaluated:
        result = bsecrets(shlex.split(evaluated[1]), env, {})
        for out in result.stdout.splitlines() if result.exit_code == 0 else []:
            assert out.split()[0] in ("export", "unset"), out  # what eval would run
            execute(out, env)
        return result
    prefix = {}
    while re.fullmatch(r"[A-Z_]+=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        prefix[key] = value
    if words[0] == "bsecrets":
        return bsecrets(words, env, prefix)
    assert not re.search(r"(^|[\s;|&(`])bsecrets(\s|$)", text), f"bsecrets in a shell line: {text}"
    done = subprocess.run(["sh", "-c", text], env=full_env({**env, **prefix}),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    return Result(done.returncode, done.stdout, done.stderr, done.stdout.encode())


def run_runbook(scenario: Scenario) -> Scenario:
    path = FOLDER / f"{scenario.runbook}.md"
    blocks, commands, _ = parse(path)
    known = documented()
    for block in blocks:
        assert block.runbook == scenario.runbook, f"{block.where}: no or another runbook"
        assert block.step in scenario.steps, f"{block.where}: unknown step {block.step}"
        step = scenario.steps[block.step]
        if step.before is not None:
            step.before()
        env = dict(step.env)  # the block's own shell
        subs = {**scenario.subs, **step.subs}
        assert set(subs) <= known, f"placeholders the README does not list: {set(subs) - known}"
        for line in block.lines:
            for bound in bindings(line.text, subs):
                text = substitute(line.text, bound, subs)
                assert not placeholders(known).search(text), f"{line.where}: {text}: unfilled"
                result = execute(text, env)
                said = f"{line.where}: {text}\n{result.stdout}\n{result.stderr}"
                assert result.exit_code == line.exit, said
                if line.exit:  # one 'error:' line (--json: the document says it)
                    assert "Traceback" not in result.stderr, said
                    assert "--json" in text or "\nerror: " in "\n" + result.stderr, said
                scenario.ran.append((line, text, result))
                for fragment, (key, value) in scenario.captures.items():
                    if fragment in text:
                        scenario.subs[key] = subs[key] = value(result.stdout)
    assert {b.step for b in blocks} == set(scenario.steps), "a step no block uses"
    executed = {line.where for line, _, _ in scenario.ran if COMMAND.match(line.text)}
    assert commands and executed == {c.where for c in commands}, "a command was not run"
    return scenario


# --- the rules every runbook keeps ----------------------------------------------------------


def test_every_command_is_in_a_tested_block_and_every_inline_one_starts_one() -> None:
    assert sorted(p.stem for p in FOLDER.glob("*.md")) == sorted([*RUNBOOKS, "README"])
    _, commands, prose = parse(FOLDER / "README.md")
    assert commands == []  # the index has no scenario: its commands are the runbooks'
    tested = []
    for name in RUNBOOKS:
        blocks, commands, inline = parse(FOLDER / f"{name}.md")
        for block in blocks:
            assert (block.runbook, bool(block.step)) == (name, True), f"{block.where}: marker"
        in_blocks = {line.where for block in blocks for line in block.lines}
        assert [c.where for c in commands if c.where not in in_blocks] == []
        tested += [command_part(c.text) for c in commands]
        prose += inline
    assert prose and tested
    for span in prose:
        words = shlex.split(span)
        assert span in UNTESTED_INLINE or any(t[: len(words)] == words for t in tested), span


def slugs(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings, as GitHub makes them."""
    found, fenced = set(), False
    for line in path.read_text().splitlines():
        fenced = fenced != line.startswith("```")
        if not fenced and (heading := re.match(r"#+ (.*)", line)):
            found.add(re.sub(r"[^\w\- ]", "", heading[1].lower()).replace(" ", "-"))
    return found


def test_links_resolve_and_the_readme_links_the_index() -> None:
    for path in sorted(FOLDER.glob("*.md")):
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if "://" in target:
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            assert dest.exists(), f"{path.name}: {target}"
            assert not anchor or anchor in slugs(dest), f"{path.name}: {target}"
    index = (FOLDER / "README.md").read_text()
    assert all(f"]({name}.md)" in index for name in RUNBOOKS)
    assert "(docs/runbooks/README.md)" in (ROOT / "README.md").read_text()


# --- the scenarios --------------------------------------------------------------------------


def ok(args: list[str], input: str | None = None, **env: str | None) -> str:
    result = invoke(args, input=input, env=env or None)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_lost_passphrase(
    isolated: Path,
    file_keyring: FileKeyring,  # noqa: F811 - the OS keyring that 'init --keyring' used
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A vault with a keyring wrap and a passphrase wrap, alice reading dev, a session
    started before the passphrase was lost; then nobody knows it."""
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    ok(["init", "--keyring", "--env", "dev", "--env", "prod"])
    ok(["put", "db/password", "-e", "prod"], "prod-pw-1")
    ok(["put", "api/key", "-e", "dev"], "dev-key-2")
    ok(["access", "principal", "add", "alice"], BSECRETS_NEW_PASSPHRASE=PASS["alice"])
    ok(["access", "grant", "alice", "-e", "dev", "--role", "read"])
    session = shlex.split(ok(["unlock", "--ttl", "8h"]))[1].partition("=")[2]
    monkeypatch.delenv("BSECRETS_PASSPHRASE")  # lost
    new = isolated.parent / "new-vault" / "bsecrets.yaml"
    alice_again = "alice's new passphrase 4e"
    owner_again = "the owner's new passphrase 6b"
    scenario = run_runbook(Scenario("lost-passphrase", {
        "check": Step({"BSECRETS_PASSPHRASE": "a guess, and a wrong one"}),
        "session": Step({"BSECRETS_SESSION": session}),
        "keyring": Step(),
        "new-passphrase": Step({"BSECRETS_NEW_PASSPHRASE": owner_again}),
        "move": Step({"BSECRETS_SESSION": session, "BSECRETS_PASSPHRASE": NEW_PASSPHRASE}),
        "principal": Step({"BSECRETS_PASSPHRASE": NEW_PASSPHRASE}, {"ENV": "dev"}),
        "principal-lost": Step({"BSECRETS_NEW_PASSPHRASE": alice_again}, {"ENV": "dev"}),
    }, {"ENV": "prod", "PRINCIPAL": "alice", "NEW_PROFILE": str(new)}))  # fmt: skip
    assert "wrong passphrase" in scenario.results("bsecrets unlock")[0].stderr
    whoami = [r.stdout.split()[0] for r in scenario.results("access whoami")]
    assert whoami == ["owner", "owner", "alice"]  # the session, the keyring, alice
    # the keyring's way: the old vault opens with the owner's new passphrase
    assert ok(["get", "db/password", "-e", "prod"], BSECRETS_PASSPHRASE=owner_again) == (
        "prod-pw-1\n")  # fmt: skip
    events = (isolated / ".bsecrets" / "old-audit.jsonl").read_text().splitlines()
    assert json.loads(events[0])["event"]["action"] == "init"  # the log, read while it could be
    assert not list((isolated / ".bsecrets").glob("*.json"))  # no export left behind
    new_vault = {"BSECRETS_PASSPHRASE": NEW_PASSPHRASE, "BSECRETS_SESSION": None}
    assert ok(["-p", str(new), "get", "db/password", "-e", "prod"], **new_vault) == "prod-pw-1\n"
    assert ok(["-p", str(new), "get", "api/key", "-e", "dev"], **new_vault) == "dev-key-2\n"
    again = invoke(["--as", "alice", "get", "api/key", "-e", "dev"],
                   env={"BSECRETS_PASSPHRASE": alice_again})  # fmt: skip
    assert again.stdout == "dev-key-2\n", again.stderr


def test_leaked_secret(vault: Path) -> None:
    """prod's db/password (the same value in dev) under a 30-day policy, read by alice (a
    read grant) and by a pipeline token; alice also tried a write (refused)."""
    profile = vault / "bsecrets.yaml"
    entry = "  prod:\n    backend: local\n"
    policy = '    rotation:\n      "db/*": {max_age: 30d, generate: "password:32"}\n'
    profile.write_text(profile.read_text().replace(entry, entry + policy))
    ok(["put", "db/password", "-e", "prod"], "leaked-pw-0")
    ok(["put", "db/password", "-e", "dev"], "leaked-pw-0")  # the same value (promoted)
    ok(["access", "principal", "add", "alice"], BSECRETS_NEW_PASSPHRASE=PASS["alice"])
    ok(["access", "grant", "alice", "-e", "prod", "--role", "read"])
    token = json.loads(ok(["token", "issue", "-e", "prod", "--role", "read", "--json"]))
    assert ok(["get", "db/password", "-e", "prod"], BSECRETS_TOKEN=token["token"]).strip()
    alice = {"BSECRETS_PASSPHRASE": PASS["alice"]}
    assert ok(["--as", "alice", "get", "db/password", "-e", "prod"], **alice).strip()
    refused = invoke(["--as", "alice", "put", "db/password", "-e", "prod"], input="x", env=alice)
    assert refused.exit_code == 4, refused.stderr
    scenario = run_runbook(Scenario("leaked-secret", {
        "rotate": Step(), "who-read": Step(), "cut-off": Step(), "preserve": Step(),
        "denied": Step(), "overdue": Step(), "check": Step(),
    }, {"ENV": "prod", "NAME": "db/password", "OTHER_ENV": "dev", "PRINCIPAL": "alice",
        "TOKEN_ID": token["id"], "EVIDENCE": str(vault.parent / "evidence")}))  # fmt: skip
    (compared,) = scenario.results("bsecrets diff")
    assert json.loads(compared.stdout)["same"] == ["db/password"]
    (rotated,) = scenario.results("--emergency")
    assert re.fullmatch(r"db/password v2 \(prod\): rotation \w+ finished\n", rotated.stdout)
    assert ok(["get", "db/password", "-e", "prod"]) not in ("leaked-pw-0\n", "")
    reads = scenario.results("--action get")[0].stdout
    assert "(alice)" in reads and f"(token-{token['id']})" in reads  # who read it
    assert "(alice)" in scenario.results("--outcome denied")[0].stdout  # who was refused
    kept = [json.loads(x)["event"] for x in
            (vault.parent / "evidence" / "events.jsonl").read_text().splitlines()]  # fmt: skip
    assert {e["action"] for e in kept} >= {"put", "get", "rotate"}
    assert all(e["details"]["emergency"] for e in kept if e["action"] == "rotate")
    assert all("db/password" in [e.get("name"), *e.get("names", [])] for e in kept)
    (steps,) = scenario.results("--action rotate --json")
    assert [e["details"]["step"] for e in json.loads(steps.stdout)] == [
        "created", "set", "tested", "finished"]  # fmt: skip
    assert all(e["details"]["emergency"] for e in json.loads(steps.stdout))
    cut = invoke(["--as", "alice", "get", "db/password", "-e", "prod"], env=alice)
    assert cut.exit_code == 4, cut.stderr
    gone = invoke(["get", "db/password", "-e", "prod"], env={"BSECRETS_TOKEN": token["token"]})
    assert gone.exit_code == 4, gone.stderr


def gone_down(work: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao) -> Callable[[], None]:
    """staging (offline fallback, 24h) and prod (none) on OpenBao, each with db/url read
    once through bsecrets (and staging listed); then the server 'goes away' (the profile
    points at a closed port). Returns what brings it back."""
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    profile = write_profile(work, monkeypatch, {
        "staging": vault_env(openbao.address, unique_prefix("rb-staging"),
                             offline={"max_stale": "24h"}, timeout=1),
        "prod": vault_env(openbao.address, unique_prefix("rb-prod"), timeout=1),
    })  # fmt: skip
    for env, value in (("staging", "pg://stage-1"), ("prod", "pg://prod-1")):
        ok(["put", "db/url", "-e", env], value)
        assert ok(["get", "db/url", "-e", env]) == value + "\n"  # a read keeps a copy
    ok(["ls", "-e", "staging"])  # and the listing
    up = profile.read_text()
    profile.write_text(up.replace(openbao.address, f"http://127.0.0.1:{closed_port()}"))
    return lambda: profile.write_text(up)


def test_backend_down(isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao) -> None:
    back = gone_down(isolated, monkeypatch, openbao)
    check = 'test "$DB_URL" = pg://stage-1'
    scenario = run_runbook(Scenario("backend-down", {
        "confirm": Step(),
        "fallback": Step(subs={"ENV": "staging", "APP": f"sh -c {shlex.quote(check)}"}),
        "after": Step(before=back),
    }, {"ENV": "prod", "NAME": "db/url"}))  # fmt: skip
    down, up = scenario.results("bsecrets status")
    assert "healthy      no" in down.stdout and "FAIL prod.reachable" in down.stdout
    assert "healthy      yes" in up.stdout
    failed, served, fine = scenario.results("bsecrets get")
    assert "cannot reach Vault at http://127.0.0.1:" in failed.stderr
    assert served.stdout == "pg://stage-1\n"
    (warning,) = served.stderr.splitlines()
    assert warning.startswith("warning: environment 'staging' is unreachable (")
    assert "offline fallback" in warning
    assert fine.stdout == "pg://prod-1\n" and fine.stderr == ""
    (log,) = scenario.results("--outcome failed")
    assert re.search(r"\bget\s+prod\s+db/url\b.*\bfailed\b", log.stdout), log.stdout


def vault_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("vault.db*"))}


def test_audit_verify_failed(vault: Path) -> None:
    """Events, a backup of the vault file, an anchor given to a witness, more events;
    then the record of a 'get' is overwritten outside bsecrets."""
    for name in ("k1", "k2", "k3"):
        ok(["put", name, "-e", "prod"], f"value-{name}")
    ok(["get", "k1", "-e", "prod"])
    backup = vault.parent / "backup" / "vault.db"
    backup.parent.mkdir(mode=0o700)
    with sqlite3.connect(vault / ".bsecrets" / "vault.db") as source, \
            sqlite3.connect(backup) as copy:  # fmt: skip
        source.backup(copy)
    source.close()
    copy.close()
    backup.chmod(0o600)
    anchor = ok(["audit", "anchor"]).strip()
    ok(["get", "k2", "-e", "prod"])
    ok(["put", "k4", "-e", "prod"], "value-k4")
    events = json.loads(ok(["audit", "log", "--json"]))
    (bad,) = [e for e in events if e["action"] == "get" and e["name"] == "k2"]
    with sqlite3.connect(vault / ".bsecrets" / "vault.db") as conn:
        conn.execute("UPDATE audit_events SET record = randomblob(length(record)) WHERE seq = ?",
                     (bad["seq"],))  # fmt: skip
    conn.close()
    before = vault_files(vault / ".bsecrets")
    evidence = vault.parent / "evidence"
    scenario = run_runbook(Scenario("audit-verify-failed", {
        "preserve": Step(), "investigate": Step(), "restore": Step(),
    }, {"EVIDENCE": str(evidence), "TIME": bad["time"], "ANCHOR": anchor,
        "BACKUP": str(backup)}))  # fmt: skip
    assert vault_files(evidence / ".bsecrets") == before  # copied before anything wrote
    assert (evidence / "bsecrets.yaml").read_text() == (vault / "bsecrets.yaml").read_text()
    summed = subprocess.run(["sha256sum", "-c", str(evidence / "SHA256SUMS")],
                            capture_output=True, check=False)  # fmt: skip
    assert summed.returncode == 0, summed.stdout
    report = json.loads((evidence / "audit-verify.json").read_text())
    assert report["ok"] is False and report["problem"] == {
        "seq": bad["seq"], "kind": "edited",
        "detail": f"event {bad['seq']} does not authenticate (edited or forged)"}  # fmt: skip
    whole, restored = scenario.results("bsecrets verify")
    assert f"problem: audit: audit log: edited at event {bad['seq']}" in whole.stdout
    assert restored.stdout.startswith("ok: ")
    (until,) = scenario.results("--until")
    seqs = [int(line.split()[0]) for line in until.stdout.splitlines()[1:]]
    assert seqs == list(range(1, bad["seq"]))  # every event before the damaged one
    (anchored,) = scenario.results("--anchor")
    assert f"edited at event {bad['seq']}" in anchored.stderr
    assert ok(["get", "k1", "-e", "prod"]) == "value-k1\n"  # the backup's vault works


def test_break_glass_at_3am(mfa: dict[str, Authenticator], vault: Path) -> None:  # noqa: F811
    """test_break_glass's team: prod holds DB; dana (no grant) asks, alice and bob (of
    alice, bob, carol: 2 of 3) approve with their codes, erin (an admin of prod) reviews
    and re-keys, the owner reads the events."""
    requester = {"BSECRETS_PASSPHRASE": None}  # not the owner's shell: its own, by --as
    scenario = Scenario("break-glass", {
        "ask": Step(requester), "approve": Step(requester), "work": Step(requester),
        "admin": Step(requester), "owner": Step(), "preserve": Step(),
    }, {"ENV": "prod", "NAME": "DB", "REQUESTER": "dana", "ADMIN": "erin",
        "CUSTODIAN": ["alice", "bob"], "CODE": lambda bound: mfa[bound["CUSTODIAN"]].code(),
        "EVIDENCE": str(vault.parent / "evidence")},
        {"break-glass request": ("REQUEST_ID", str.strip)})  # fmt: skip
    run_runbook(scenario)
    rid = scenario.subs["REQUEST_ID"]
    assert re.fullmatch(r"[0-9a-f]{12}", str(rid))
    assert "no access to environment 'prod'" in scenario.results("get DB")[0].stderr
    approvals = scenario.results("break-glass approve")
    assert [a.exit_code for a in approvals] == [0, 0] and len(approvals) == 2
    read, revoked = scenario.results("bsecrets get DB")
    assert read.stdout == SECRET + "\n"
    assert "revoked" in revoked.stderr and SECRET not in revoked.stdout + revoked.stderr
    (found,) = [r for r in json.loads(ok(["break-glass", "status", "--json"]))["requests"]
                if r["id"] == rid]  # fmt: skip
    assert found["state"] == "revoked" and found["review"]["by"] == "erin"
    (setup,) = json.loads(ok(["break-glass", "status", "--json"]))["setups"]
    assert setup["generation"] == 2 and setup["rekey_needed"] is False
    steps = [
        json.loads(x)["event"]["action"]
        for x in (vault.parent / "evidence" / "break-glass.jsonl").read_text().splitlines()
    ]
    assert steps == ["break_glass.setup", "break_glass.request", "break_glass.approve",
                     "break_glass.approve", "break_glass.activate", "break_glass.revoke",
                     "break_glass.review", "break_glass.rekey"]  # fmt: skip
    assert "(dana)" in scenario.results("--actor dana")[0].stdout


# --- what the runbooks found missing (strict: each fails until it is fixed) ----------------


def test_the_offline_warning_names_the_address_that_did_not_answer(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, openbao: OpenBao
) -> None:
    """backend-down.md quotes this warning: it should say which server is unreachable."""
    gone_down(isolated, monkeypatch, openbao)
    served = invoke(["get", "db/url", "-e", "staging"])
    assert served.exit_code == 0 and served.stdout == "pg://stage-1\n", served.stderr
    assert "(cannot reach Vault at http://127.0.0.1:" in served.stderr, served.stderr


def test_audit_export_until_before_a_damaged_event_exports_what_audit_log_lists(
    vault: Path,
) -> None:
    """audit-verify-failed.md reads the events before a damaged one with 'audit log
    --until'; 'audit export --until' (the same filters, for a SIEM or the evidence)
    refuses them (exit 5)."""
    for name in ("a", "b", "c"):
        ok(["put", name], f"value-{name}")
    with sqlite3.connect(vault / ".bsecrets" / "vault.db") as conn:
        (time,) = conn.execute("SELECT time FROM audit_events WHERE seq = 3").fetchone()
        conn.execute("UPDATE audit_events SET record = randomblob(length(record)) WHERE seq = 3")
    conn.close()
    listed = json.loads(ok(["audit", "log", "--until", time, "--json"]))
    assert [e["seq"] for e in listed] == [1, 2]
    target = vault / "before.jsonl"
    done = invoke(["audit", "export", "--format", "jsonl", "--until", time, "-o", str(target)])
    assert done.exit_code == 0, done.stderr
    assert [json.loads(x)["seq"] for x in target.read_text().splitlines()] == [1, 2]


def test_the_owner_can_give_the_vault_a_new_passphrase(
    isolated: Path,
    file_keyring: FileKeyring,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """lost-passphrase.md: a vault the OS keyring still opens gets a new passphrase
    ('passphrase change', the new one from BSECRETS_NEW_PASSPHRASE) instead of being
    moved to a new vault; the lost one opens nothing any more, the keyring still does."""
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    ok(["init", "--keyring", "--env", "dev"])
    ok(["put", "a"], "value-a")
    monkeypatch.delenv("BSECRETS_PASSPHRASE")  # lost: the keyring opens it
    changed = invoke(["passphrase", "change"], env={"BSECRETS_NEW_PASSPHRASE": NEW_PASSPHRASE})
    assert changed.exit_code == 0, changed.stderr
    assert ok(["get", "a"], BSECRETS_PASSPHRASE=NEW_PASSPHRASE) == "value-a\n"
    assert invoke(["get", "a"], env={"BSECRETS_PASSPHRASE": PASSPHRASE}).exit_code == 4
    assert ok(["get", "a"]) == "value-a\n"  # the keyring's wrap is untouched
