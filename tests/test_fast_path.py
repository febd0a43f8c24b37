"""The everyday path stays light: the parsed-profile cache, lazy commands, and
no heavy module imported by `get`, `exec`, `export`, `put` or `render`: not even typer, which their
plain shapes skip (bsecrets/cli/fast.py). Timings live in bench/, not here."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import invoke

from bsecrets.cli import collector
from bsecrets.config.cache import cache_dir, load_profile_cached

HEAVY = (
    "yaml", "ruamel", "rich", "keyring", "hvac", "boto3", "botocore", "pydantic", "platformdirs",
    "prometheus_client", "opentelemetry",  # traces load only when asked for (bsecrets/tracing)
    "typer", "click", "shellingham",  # the command line's framework: not on a plain get
)  # fmt: skip

# What a plain `get` in a session imports beyond the interpreter's start and the standard
# library, recorded: a module not listed here is new weight on every get. Taking one
# away needs no change here; adding one needs a reason (bench/README.md, the levers).
GET_THIRD_PARTY = {"cryptography", "_cffi_backend", "_openssl"}
# Standard-library modules the hot commands do without, each ~0.2-4 ms of every command
# when it was imported (bench/README.md, "Standard-library imports off the hot path",
# "Paths as text, JSON from _json"): locks come from _thread, exec's signal reset from
# _signal, paths are text (os.path), a backend's module is __import__ed, JSON comes from
# _json (bsecrets/json_codec.py), the profile cache is named without a crc32.
STDLIB_NOT_HOT = {
    "threading", "zlib", "base64", "hashlib", "_hashlib", "signal", "pathlib", "importlib",
    "json",  # its import compiles seven regexes: the hot commands use _json (json_codec.py)
    "binascii",  # an extension module here: a session's base64 is read without it
    "struct",  # the same: lengths and ints are packed with int.to_bytes (crypto/keys.py)
}  # fmt: skip
GET_MODULES = {
    "bsecrets", "bsecrets.audit", "bsecrets.audit.chain",
    "bsecrets.audit.events", "bsecrets.audit.local_log", "bsecrets.audit.logger",
    "bsecrets.audit.member_intake", "bsecrets.audit.witness", "bsecrets.backends",
    "bsecrets.backends.local", "bsecrets.backends.local.adapter",
    "bsecrets.backends.local.buckets", "bsecrets.backends.local.bulk",  # the adapter's split
    "bsecrets.backends.local.records",
    "bsecrets.backends.registry", "bsecrets.cli", "bsecrets.cli.cli_context",
    "bsecrets.cli.collector", "bsecrets.cli.commands", "bsecrets.cli.commands.get_value",
    "bsecrets.cli.entry",
    "bsecrets.cli.fast",
    "bsecrets.cli.outcome", "bsecrets.cli.process_exit", "bsecrets.config", "bsecrets.config.cache",
    "bsecrets.config.ci",
    "bsecrets.config.loader", "bsecrets.config.profile", "bsecrets.config.settings",
    "bsecrets.crypto", "bsecrets.crypto.keys",
    "bsecrets.errors", "bsecrets.files", "bsecrets.health",
    "bsecrets.models", "bsecrets.named_tuples", "bsecrets.ports",
    "bsecrets.str_enums", "bsecrets.json_codec",
    "bsecrets.services",
    "bsecrets.services.access", "bsecrets.services.credentials", "bsecrets.services.manager",
    "bsecrets.timeutil", "bsecrets.tracing", "bsecrets.vaultfile",
    "bsecrets.vaultfile.connection",
    "bsecrets.vaultfile.credentials",
    "bsecrets.vaultfile.manifest", "bsecrets.vaultfile.policy",
    "bsecrets.vaultfile.schema",
    "bsecrets.vaultfile.session",
    "bsecrets.vaultfile.sqlite_errors", "bsecrets.vaultfile.store",
    "bsecrets.vaultfile.vault",
}  # fmt: skip
# exec and export: get's modules but its body, and what their own work needs; each list
# the command's own, so that exec's modules do not creep into export, nor either into get.
NOT_GET = GET_MODULES - {"bsecrets.cli.commands.get_value"}
BULK_MODULES = {
    "bsecrets.cli.option_lists", "bsecrets.config.envmap", "bsecrets.services.env_layers",
}  # fmt: skip
# exec's plain path does without the formats, the transfer service, the template parser
# (an --env-file's), the supervisor and the masking (a masked child's, a mount's, --watch's):
# they load where used
EXEC_MODULES = NOT_GET | BULK_MODULES | {
    "bsecrets.cli.commands.exec_child",
    "bsecrets.services.env_file", "bsecrets.services.exec_env", "bsecrets.services.exec_inputs",
}  # fmt: skip
EXPORT_MODULES = NOT_GET | BULK_MODULES | {
    "bsecrets.cli.commands.export_secrets", "bsecrets.formats", "bsecrets.formats.codecs",
    "bsecrets.services.transfer",
}  # fmt: skip
PUT_MODULES = NOT_GET | {"bsecrets.cli.commands.put_value"}
RENDER_MODULES = NOT_GET | {
    "bsecrets.cli.commands.render_template", "bsecrets.run", "bsecrets.run.template",
    "bsecrets.services.env_layers", "bsecrets.config.envmap",
    "bsecrets.formats", "bsecrets.formats.codecs", "bsecrets.services.transfer",
}  # fmt: skip
HOT_COMMANDS = {
    "get": (["get", "a"], GET_MODULES),
    "exec": (["exec", "--", "true"], EXEC_MODULES),  # recorded as the command replaces it
    "export": (["export", "--format", "dotenv"], EXPORT_MODULES),
    "put": (["put", "b", "--value", "x"], PUT_MODULES),  # no stdin to read in the probe
    "render": (["render", "t.tmpl"], RENDER_MODULES),
}

PROBE = """
import atexit, builtins, os, sys
sys.argv = ["bsecrets", *sys.argv[1:]]
compiled = []
real_compile = builtins.compile

def compile(*args, **kwargs):  # the process's first call costs ~1 ms (its AST state)
    if isinstance(args[0], str):  # not a module's source without its .pyc (bytes)
        compiled.append(args[0][:40])
    return real_compile(*args, **kwargs)

builtins.compile = compile
real_eval = builtins.eval

def eval(*args, **kwargs):  # ours compiled namedtuple's __new__, ~40 us a field count
    caller = sys._getframe(1).f_globals.get("__name__", "")
    if isinstance(args[0], str) and caller.startswith("bsecrets"):  # not the floor's
        compiled.append("eval: " + args[0][:34])
    return real_eval(*args, **kwargs)

builtins.eval = eval

def report():
    sys.stdout.flush()
    print("\\nCOMPILED " + repr(compiled), file=sys.stderr, flush=True)
    print("\\nMODULES " + " ".join(sorted(sys.modules)), file=sys.stderr, flush=True)

real_execvpe = os.execvpe

def execvpe(*args):  # exec's command replaces this process: what it had loaded, first
    report()
    real_execvpe(*args)

os.execvpe = execvpe
atexit.register(report)  # the command ends in process_exit.leave, which runs these
from bsecrets.cli.entry import main
main()
"""


def _without_site() -> dict[str, str]:
    """The probes run with ``python -S`` and this process's path: what a .pth file of
    the machine imports at start (this sandbox's certifi hook loads threading and zlib,
    say) would otherwise hide the same module imported by a command."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def modules_after(*args: str) -> tuple[int, set[str], str]:
    result = subprocess.run(
        [sys.executable, "-S", "-c", PROBE, *args], capture_output=True, text=True, check=False,
        env=_without_site(), timeout=60,
    )  # fmt: skip
    line = [x for x in result.stderr.splitlines() if x.startswith("MODULES ")][-1]
    compiled = [x for x in result.stderr.splitlines() if x.startswith("COMPILED ")][-1]
    return result.returncode, set(line.split()[1:]), compiled.split(" ", 1)[1]


def modules_at_start() -> set[str]:
    """What the interpreter has loaded before any code of ours (site, .pth hooks)."""
    result = subprocess.run(
        [sys.executable, "-S", "-c", "import sys; print(*sys.modules)"], capture_output=True,
        text=True, check=True, env=_without_site(), timeout=60,
    )  # fmt: skip
    return set(result.stdout.split())


@pytest.mark.parametrize("command", sorted(HOT_COMMANDS))
def test_hot_commands_import_nothing_heavy(vault: Path, command: str) -> None:
    args, allowed = HOT_COMMANDS[command]
    invoke(["put", "a"], input="1")
    Path("t.tmpl").write_text("A={{ bsecrets://dev/a }}\n")  # render's
    session = invoke(["unlock"]).stdout.strip().split("=", 1)[1]
    os.environ["BSECRETS_SESSION"] = session
    try:
        invoke(["ls"])  # fills the profile cache
        code, modules, compiled = modules_after(*args)
    finally:
        del os.environ["BSECRETS_SESSION"]
    assert code == 0
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == []
    assert "bsecrets.cli.fast" in modules and "bsecrets.cli.app" not in modules
    loaded = modules - modules_at_start()
    ours = {m for m in loaded if m.split(".")[0] == "bsecrets"}
    assert sorted(ours - allowed) == []
    others = {m.split(".")[0] for m in loaded} - {"bsecrets"} - set(sys.stdlib_module_names)
    assert sorted(others - GET_THIRD_PARTY) == []
    assert sorted(loaded & STDLIB_NOT_HOT) == []
    # no compile(): typing's TypedDict and NamedTuple call it for each annotation, and
    # the first call of a process costs ~1 ms (events.py, named_tuples.py)
    assert compiled == "[]"
    assert "bsecrets.cli.commands.setup" not in modules  # commands are built on demand
    assert "bsecrets.config.parser" not in modules
    # the session carries the environment keys: no X25519 (and its OpenSSL backend) on get
    assert "cryptography.hazmat.primitives.asymmetric.x25519" not in modules


# When the collector was on: as the core's modules load, and once the command is done.
GC_PROBE = """
import atexit, gc, sys
sys.argv = ["bsecrets", *sys.argv[1:]]
seen = {}

class Watch:  # an import hook, not ours: notes the collector as the core starts to load
    def find_spec(self, name, path=None, target=None):
        if name == "bsecrets.services.manager":
            seen["loading"] = gc.isenabled()
        return None

sys.meta_path.insert(0, Watch())
atexit.register(lambda: print(f"GC {seen.get('loading')} {gc.isenabled()}", file=sys.stderr))
from bsecrets.cli.entry import main
main()
"""


@pytest.mark.parametrize("args", [["get", "a"], ["ls"], ["--help"]])
def test_the_collector_is_off_while_modules_load(vault: Path, args: list[str]) -> None:
    """Off while the modules load, back on for the command's work: get (the fast path),
    ls (the Typer app), --help (the app, no core)."""
    invoke(["put", "a"], input="1")
    result = subprocess.run(
        [sys.executable, "-c", GC_PROBE, *args], capture_output=True, text=True, check=False,
        env=dict(os.environ), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    loading, done = result.stderr.split("GC ")[-1].split()
    assert loading == ("None" if args == ["--help"] else "False")
    assert done == "True"


def test_what_loads_before_the_collector_is_held_is_small() -> None:
    """The console script imports bsecrets.cli.entry before main() holds the collector:
    what that loads runs with the collector on, and typing's import there set off
    collections (one of generation 1) that cost every command ~1 ms."""
    probe = "import sys; before = set(sys.modules); import bsecrets.cli.entry; "
    probe += "print(' '.join(sorted(set(sys.modules) - before)))"
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=60,
    )  # fmt: skip
    loaded = set(result.stdout.split())
    ours = {m for m in loaded if m.startswith("bsecrets")}
    assert ours == {"bsecrets", "bsecrets.cli", "bsecrets.cli.collector", "bsecrets.cli.entry"}
    assert not loaded & {"typing", "enum", "re", "json", "pathlib"}


def test_the_collector_is_left_as_found_outside_the_console_script() -> None:
    """release() without hold(), or after a hold() that found it off, changes nothing:
    the SDK, the server and in-process tests keep the collector as they have it."""
    frozen = gc.get_freeze_count()
    assert gc.isenabled()
    collector.release()  # the manager of an in-process command, say
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    gc.disable()
    try:
        collector.hold()
        collector.release()
        assert not gc.isenabled() and gc.get_freeze_count() == frozen
    finally:
        gc.enable()


def test_cache_is_private_and_reused(vault: Path) -> None:
    profile = load_profile_cached(vault / "bsecrets.yaml")
    files = list(Path(cache_dir()).glob("*.json"))
    assert len(files) == 1
    assert files[0].stat().st_mode & 0o777 == 0o600
    assert Path(cache_dir()).stat().st_mode & 0o777 == 0o700
    assert load_profile_cached(vault / "bsecrets.yaml") == profile


def test_editing_the_profile_invalidates_the_cache(vault: Path) -> None:
    path = vault / "bsecrets.yaml"
    assert load_profile_cached(path).default_env == "dev"
    path.write_text(path.read_text().replace("default_env: dev", "default_env: prod"))
    assert load_profile_cached(path).default_env == "prod"


def test_errors_still_name_file_and_line(vault: Path) -> None:
    path = vault / "bsecrets.yaml"
    load_profile_cached(path)
    path.write_text(path.read_text() + "bogus: 1\n")
    result = invoke(["ls"])
    assert result.exit_code == 2
    assert "bsecrets.yaml:" in result.stderr and "bogus" in result.stderr


@pytest.mark.parametrize("garbage", [b"not json", b'{"format": 1}', b"[]"])
def test_a_broken_cache_is_ignored(vault: Path, garbage: bytes) -> None:
    path = vault / "bsecrets.yaml"
    expected = load_profile_cached(path)
    (cache_file,) = Path(cache_dir()).glob("*.json")
    cache_file.write_bytes(garbage)
    assert load_profile_cached(path) == expected


def test_a_cache_others_can_write_is_ignored(vault: Path) -> None:
    path = vault / "bsecrets.yaml"
    load_profile_cached(path)
    (cache_file,) = Path(cache_dir()).glob("*.json")
    entry = json.loads(cache_file.read_text())
    entry["profile"]["default_env"] = "prod"  # a planted answer
    cache_file.write_text(json.dumps(entry))
    cache_file.chmod(0o666)
    assert load_profile_cached(path).default_env == "dev"
