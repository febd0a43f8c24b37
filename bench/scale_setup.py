"""The setup of bench_scale.py: the venv it measures (a regular ``pip install`` of the
checkout, as users have bsecrets), the vaults (10, 10, 100, 1,000 and --secrets
secrets), and the measured ``import`` of the large dotenv (target 6), which also
builds the large vault when it finishes in time.

Nothing of bsecrets is imported here: every command runs in the venv's Python.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import SCRUBBED, BenchError, call, git_state

REPO = Path(__file__).resolve().parents[1]
SMALL_VAULTS = {"small": 10, "put": 10, "exec": 100, "export": 1000}

# Builds the large vault when the real import did not finish in time: the real
# SecretsManager.put of every secret in one audited ``import`` transaction (records,
# audit events and the import's own event as an import writes them). The local
# backend digests each touched bucket once at the transaction's end (since the #20
# batching; before it, each put re-hashed its bucket and the builder skipped that).
BUILDER = r"""
import os, sys, time
from pathlib import Path
from bsecrets.audit.events import Action
from bsecrets.config.loader import load_profile
from bsecrets.services.manager import SecretsManager
from bsecrets.vaultfile.credentials import Credentials

dotenv, env = sys.argv[1], "dev"
items = [line.split("=", 1) for line in Path(dotenv).read_text().splitlines() if line]
m = SecretsManager(load_profile(Path("bsecrets.yaml")),
                   Credentials(passphrase=os.environ["BSECRETS_PASSPHRASE"]))
start, step = time.perf_counter(), max(1, len(items) // 10)
with m.transaction(env, action=Action.IMPORT, names=[n for n, _ in items]):
    for done, (name, value) in enumerate(items, 1):
        m.put(env, name, value.encode())
        if done % step == 0:
            print(f"  built {done:,}/{len(items):,} ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)
m.close()
"""

# Child processes run with these dropped from the calling environment, besides SCRUBBED.
DROPPED = ("PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "VIRTUAL_ENV")
DROPPED_PREFIXES = ("BSECRETS_", "OTEL_")


def secret_name(i: int) -> str:
    return f"APP_KEY_{i:06d}"


def secret_value(i: int) -> str:
    """Bench data, not secrets: the same in every run."""
    return f"value-{i:06d}-" + hashlib.sha256(str(i).encode()).hexdigest()[:32]


def child_env(work: Path) -> dict[str, str]:
    """The calling environment without what changes bsecrets or Python's path, at home
    in ``work``."""
    env = {
        k: v for k, v in os.environ.items()
        if k not in SCRUBBED and k not in DROPPED and not k.startswith(DROPPED_PREFIXES)
    }  # fmt: skip
    home = work / "home"
    env.update(
        HOME=str(home), XDG_RUNTIME_DIR=str(home / "run"), XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local" / "share"),
    )  # fmt: skip
    for sub in ("run", ".cache", ".config"):
        (home / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    return env


def private_file(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def dotenv_file(work: Path, count: int) -> Path:
    path = work / "data" / f"secrets-{count}.env"
    if not path.exists():
        private_file(path, "".join(f"{secret_name(i)}={secret_value(i)}\n" for i in range(count)))
    return path


# --- the venv ------------------------------------------------------------------


def source_fingerprint(source: str) -> tuple[str, str]:
    """(fingerprint, label) of what --source names: the tree's files, or a commit."""
    if source != "tree":
        sha = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--verify", f"{source}^{{commit}}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if sha.returncode != 0:
            raise BenchError(f"--source {source}: not a git revision of {REPO}")
        return sha.stdout.strip(), f"commit {sha.stdout.strip()[:7]} (--source {source})"
    digest = hashlib.sha256()
    files = [REPO / "pyproject.toml", *sorted((REPO / "bsecrets").rglob("*"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest(), f"the checkout's tree at {git_state(REPO)}"


def export_revision(work: Path, sha: str) -> Path:
    """``git archive`` of a commit, unpacked in ``work``: a clean clone's files."""
    target = work / f"src-{sha[:12]}"
    if not (target / "pyproject.toml").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        archive = work / "src.tar"
        subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), sha],
            check=True, capture_output=True,
        )  # fmt: skip
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        archive.unlink()
    return target


def ensure_venv(args: argparse.Namespace, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """The venv with bsecrets from --source installed by pip (made or refreshed here)."""
    venv = (args.venv or work / "venv").resolve()
    python, marker = venv / "bin" / "python", venv / "bench-source.json"
    fingerprint, label = source_fingerprint(args.source)
    installed: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        installed = json.loads(marker.read_text())
    pip_env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    info = {"venv": str(venv), "label": label, "fingerprint": fingerprint, "action": "reused"}
    if not python.exists() or installed.get("fingerprint") != fingerprint:
        src = REPO if args.source == "tree" else export_revision(work, fingerprint)
        start = time.perf_counter()
        if not python.exists():
            print(f"making the venv {venv} (pip install {src})", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=pip_env)
            steps = [["install", "--quiet", str(src)]]
            info["action"] = "made"
        else:
            print(f"reinstalling bsecrets in {venv}: the source changed", file=sys.stderr)
            steps = [["install", "--quiet", "--force-reinstall", "--no-deps", str(src)],
                     ["install", "--quiet", str(src)]]  # fmt: skip
            info["action"] = "reinstalled"
        for step in steps:
            proc = subprocess.run(
                [str(python), "-m", "pip", *step], env=pip_env, capture_output=True, check=False
            )
            if proc.returncode != 0:
                raise BenchError(f"pip {' '.join(step[:2])}: {proc.stderr.decode()[-800:]}")
        info["install_s"] = time.perf_counter() - start
        private_file(marker, json.dumps({"fingerprint": fingerprint, "label": label}))
    probe = (
        "import json, sqlite3, bsecrets, importlib.metadata as m, sysconfig\n"
        "def v(d):\n"
        "    try:\n"
        "        return m.version(d)\n"
        "    except m.PackageNotFoundError:\n"
        "        return 'not installed'\n"
        "print(json.dumps({'file': bsecrets.__file__, 'sqlite': sqlite3.sqlite_version,\n"
        " 'site': sysconfig.get_path('purelib'), 'versions': {d: v(d) for d in\n"
        " ('bsecrets', 'typer', 'click', 'cryptography', 'rich', 'PyYAML')}}))\n"
    )
    found = json.loads(call([str(python), "-c", probe], env, work))
    if not found["file"].startswith(str(venv)):
        raise BenchError(f"the venv imports bsecrets from {found['file']}, not from {venv}")
    package = Path(found["file"]).parent
    if not any((package / "cli" / "__pycache__").glob("*.pyc")):  # pip compiles on install
        call([str(python), "-m", "compileall", "-q", str(package)], env, work)
    return {**info, **found, "python": str(python), "script": str(venv / "bin" / "bsecrets")}


# --- the vaults ------------------------------------------------------------------


def init_vault(script: str, folder: Path, env: dict[str, str], passphrase: str) -> None:
    """A new vault in ``folder`` (real Argon2id: no test KDF)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    call([script, "init"], {**env, "BSECRETS_PASSPHRASE": passphrase}, folder)


def unlock(script: str, folder: Path, env: dict[str, str], passphrase: str) -> dict[str, str]:
    """``env`` with a fresh session of the vault in ``folder``."""
    out = call([script, "unlock", "--json"], {**env, "BSECRETS_PASSPHRASE": passphrase}, folder)
    return {**env, "BSECRETS_SESSION": json.loads(out)["session"]}


def timed_import(
    script: str, folder: Path, env: dict[str, str], dotenv: Path, timeout: float
) -> dict[str, Any]:
    """``bsecrets import DOTENV`` as a fresh process: wall and CPU time, the child's own
    peak RSS (wait4), and the time of each progress line it prints; killed after
    ``timeout`` seconds (0: never)."""
    progress: list[tuple[float, int]] = []
    errors: list[str] = []
    start = time.perf_counter()
    proc = subprocess.Popen(
        [script, "import", str(dotenv)], env=env, cwd=folder, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("importing: "):
                progress.append((time.perf_counter() - start, int(line.split()[1].split("/")[0])))
            else:
                errors.append(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if timeout and time.perf_counter() - start > timeout:
            proc.kill()
            killed = True
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    if proc.returncode != 0 and not killed:
        raise BenchError(f"import: exit {proc.returncode}: {''.join(errors)[-800:]}")
    result = {
        "completed": not killed, "seconds": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_mib": usage.ru_maxrss / 1024, "progress": [[round(t, 2), d] for t, d in progress],
        "lines": sum(1 for _ in dotenv.open()), "when": time.strftime("%Y-%m-%d %H:%M"),
    }  # fmt: skip
    if killed and len(progress) >= 2:
        result["estimate_s"] = quadratic_estimate(progress, result["lines"])
    return result


def quadratic_estimate(points: list[tuple[float, int]], total: int) -> float:
    """t = a*n + b*n^2 fitted (least squares) to the progress lines, at ``total``: a
    rough figure for an import that was stopped."""
    s2 = sum(float(n) ** 2 for _t, n in points)
    s3 = sum(float(n) ** 3 for _t, n in points)
    s4 = sum(float(n) ** 4 for _t, n in points)
    t1 = sum(t * n for t, n in points)
    t2 = sum(t * float(n) ** 2 for t, n in points)
    det = s2 * s4 - s3 * s3
    if det == 0:
        return points[-1][0] * total / points[-1][1]
    a, b = (t1 * s4 - t2 * s3) / det, (s2 * t2 - s3 * t1) / det
    return max(a * total + b * total**2, points[-1][0] * total / points[-1][1])


@dataclass
class Setup:
    """What bench_scale.py measures: the venv, the vaults and their sessions."""

    work: Path
    venv: dict[str, Any]
    env: dict[str, str]
    state: dict[str, Any]
    session_env: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def python(self) -> str:
        return str(self.venv["python"])

    @property
    def script(self) -> str:
        return str(self.venv["script"])

    @property
    def source_label(self) -> str:
        return str(self.venv["label"])

    @property
    def import_result(self) -> dict[str, Any]:
        return dict(self.state.get("import") or {})

    def folder(self, vault: str) -> Path:
        return self.work / "vaults" / vault

    def audit_events(self, vault: str) -> int:
        out = call([self.script, "audit", "verify", "--json"], self.session_env[vault],
                   self.folder(vault))  # fmt: skip
        return int(json.loads(out)["events"])

    def describe(self) -> str:
        v = self.venv["versions"]
        return (
            f"bsecrets {v['bsecrets']} from {self.source_label}, pip-installed in "
            f"{self.venv['venv']} ({self.venv['action']}); typer {v['typer']}, click "
            f"{v['click']}, cryptography {v['cryptography']}, SQLite {self.venv['sqlite']}"
        )

    def build_notes(self) -> list[str]:
        notes = []
        if "install_s" in self.venv:
            notes.append(f"venv: pip install took {self.venv['install_s']:.0f} s")
        large = self.state.get("large_build", {})
        how = large.get("how", "?")
        if self.state.get("reused"):
            notes.append(f"vaults reused from {self.work / 'vaults'} (built {large.get('when')})")
        elif how == "import":
            notes.append("large vault: the measured import itself (it finished in time)")
        elif how == "builder":
            notes.append(
                f"large vault: built in {large['seconds']:.0f} s by the bench's builder (the real "
                "puts in one import transaction, each bucket's manifest committed once: see "
                "bench/README.md), since the import did not finish in time"
            )
        return notes

    def public_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.state.items() if k != "passphrase"}


def prepare(args: argparse.Namespace, work: Path) -> Setup:
    """The venv, then every vault (reused from --workdir when they match), a fresh
    session of each, and the import figure (measured unless reused or skipped)."""
    env = child_env(work)
    venv = ensure_venv(args, work, env)
    state_file = work / "state.json"
    state: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(state_file.read_text())
    want = {**SMALL_VAULTS, "large": args.secrets}
    setup = Setup(work, venv, env, state)
    reuse = (
        not args.rebuild and state.get("counts") == want
        and all((setup.folder(v) / "bsecrets.yaml").exists() for v in want)
    )  # fmt: skip
    if not reuse:
        state.clear()
        state.update(counts=want, passphrase="bench-" + secrets.token_urlsafe(18), reused=False)
        shutil.rmtree(work / "vaults", ignore_errors=True)
    else:
        state["reused"] = True
    passphrase, script = state["passphrase"], setup.script
    if not reuse:
        for vault, count in SMALL_VAULTS.items():
            print(f"building the {vault} vault ({count} secrets)", file=sys.stderr, flush=True)
            folder = setup.folder(vault)
            init_vault(script, folder, env, passphrase)
            call([script, "import", str(dotenv_file(work, count))],
                 unlock(script, folder, env, passphrase), folder)  # fmt: skip
    measure_import(args, setup, passphrase)
    if not (setup.folder("large") / "bsecrets.yaml").exists():
        build_large(setup, args.secrets, passphrase)
    for vault in want:
        setup.session_env[vault] = unlock(script, setup.folder(vault), env, passphrase)
    private_file(state_file, json.dumps(state))
    return setup


def measure_import(args: argparse.Namespace, setup: Setup, passphrase: str) -> None:
    """Target 6, into a new vault; kept as the large vault when it finished and none
    exists. A figure measured earlier for the same source and size is reused."""
    old = setup.state.get("import") or {}
    if args.skip_import:
        setup.state["import"] = None
        return
    if (
        old.get("fingerprint") == setup.venv["fingerprint"] and old.get("lines") == args.secrets
        and not args.rebuild
    ):  # fmt: skip
        old["reused_from"] = f"{old['when']}, same source"
        return
    folder, script, env = setup.folder("import"), setup.script, setup.env
    dotenv = dotenv_file(setup.work, args.secrets)
    init_vault(script, folder, env, passphrase)
    print(
        f"measuring: import of {args.secrets:,} lines (stopped after "
        f"{args.import_timeout or 'no limit'} s)", file=sys.stderr, flush=True,
    )  # fmt: skip
    result = timed_import(script, folder, unlock(script, folder, env, passphrase), dotenv,
                          args.import_timeout)  # fmt: skip
    result["fingerprint"] = setup.venv["fingerprint"]
    setup.state["import"] = result
    large = setup.folder("large")
    if result["completed"] and not (large / "bsecrets.yaml").exists():
        folder.rename(large)
        setup.state["large_build"] = {"how": "import", "seconds": result["seconds"],
                                      "when": result["when"]}  # fmt: skip
    else:
        shutil.rmtree(folder, ignore_errors=True)


def build_large(setup: Setup, count: int, passphrase: str) -> None:
    folder = setup.folder("large")
    print(f"building the large vault ({count:,} secrets, the bench's builder)", file=sys.stderr)
    init_vault(setup.script, folder, setup.env, passphrase)
    start = time.perf_counter()
    proc = subprocess.run(
        [setup.python, "-c", BUILDER, str(dotenv_file(setup.work, count))],
        env={**setup.env, "BSECRETS_PASSPHRASE": passphrase}, cwd=folder,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BenchError(f"building the large vault: exit {proc.returncode} (its error above)")
    setup.state["large_build"] = {
        "how": "builder", "seconds": time.perf_counter() - start,
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }  # fmt: skip
