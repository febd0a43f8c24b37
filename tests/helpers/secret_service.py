"""A private, headless Secret Service (D-Bus + gnome-keyring) for tests.

    def test_x(secret_service):  # registered once in tests/conftest.py
        subprocess.run([...], env={**os.environ, **secret_service})

The session fixture yields a ``SecretServiceEnv``: a dict of environment
overrides (DBUS_SESSION_BUS_ADDRESS, PYTHON_KEYRING_BACKEND, HOME, XDG_*) that
make ``import keyring`` in a child process use a private, unlocked keyring,
plus ``.pids`` (daemon name -> PID) and ``.ready_seconds``. The test process's
own ``os.environ`` is left untouched.
"""

import ctypes
import os
import select
import shutil
import signal
import site
import subprocess
import sys
import time

import pytest

BACKEND = "keyring.backends.SecretService.Keyring"
NO_KEYRING_ENV = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
APT_HINT = "apt-get install -y --no-install-recommends gnome-keyring dbus-daemon"
PASSWORD = b"bsecrets-test-password"
READY_TIMEOUT = 10.0
GNOME_KEYRING = "gnome-keyring-daemon --foreground --unlock --components=secrets"

# The standard session.conf minus <standard_session_servicedirs/>: with no
# D-Bus activation, a request sent before our daemon owns the name cannot
# spawn a second, locked gnome-keyring-daemon (or a GUI prompter).
DBUS_CONFIG = """<busconfig>
  <type>session</type>
  <listen>unix:dir={run_dir}</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

PROBE = """
import keyring
keyring.set_password("bsecrets-probe", "probe", "ok")
assert keyring.get_password("bsecrets-probe", "probe") == "ok"
keyring.delete_password("bsecrets-probe", "probe")
"""


class SecretServiceEnv(dict):
    """Environment overrides for child processes, plus daemon details."""

    pids: dict[str, int]
    ready_seconds: float


def _logs(root):
    logs = sorted(root.glob("*.log"))
    return "".join(f"\n--- {p.name} ---\n{p.read_text(errors='replace')}" for p in logs)


try:  # Linux: the kernel SIGTERMs a daemon if pytest dies without teardown
    _prctl = ctypes.CDLL(None).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent():
    _prctl(1, signal.SIGTERM)  # 1 == PR_SET_PDEATHSIG


def _spawn(argv, env, root, stdin, stdout=None):
    """Start a daemon in its own process group; stderr goes to ROOT/<name>.log."""
    with open(root / f"{argv[0]}.log", "wb") as log:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=stdin,
            stdout=stdout or log,
            stderr=log,
            start_new_session=True,
            preexec_fn=_die_with_parent if _prctl else None,
        )


def _read_address(proc, root, timeout=5.0):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    address = proc.stdout.readline().decode().strip() if ready else ""
    if not address:
        msg = f"dbus-daemon printed no address (exit code {proc.poll()})"
        pytest.fail(msg + _logs(root), pytrace=False)
    return address


def _wait_ready(env, procs, root):
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        dead = [p.args[0] for p in procs if p.poll() is not None]
        if dead:
            pytest.fail(f"{', '.join(dead)} exited early{_logs(root)}", pytrace=False)
        probe = subprocess.run(
            [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
            timeout=10, check=False,
        )  # fmt: skip
        if probe.returncode == 0:
            return
        if time.monotonic() > deadline:
            msg = f"Secret Service unusable after {READY_TIMEOUT}s:\n{probe.stderr}"
            pytest.fail(msg + _logs(root), pytrace=False)
        time.sleep(0.1)


def _stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.stdout:
        proc.stdout.close()


@pytest.fixture(scope="session")
def secret_service(tmp_path_factory):
    tools = ("dbus-daemon", "gnome-keyring-daemon")
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        msg = f"{', '.join(missing)} not found; install gnome-keyring dbus-daemon"
        if os.environ.get("CI"):  # CI installs them: a skip would hide that
            pytest.fail(f"{msg} ({APT_HINT})", pytrace=False)
        pytest.skip(msg)

    root = tmp_path_factory.mktemp("secret-service")
    home, run_dir = root / "home", root / "run"
    home.mkdir(mode=0o700)
    run_dir.mkdir(mode=0o700)
    (root / "bus.conf").write_text(DBUS_CONFIG.format(run_dir=run_dir))
    overrides = SecretServiceEnv(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_RUNTIME_DIR=str(run_dir),
        PYTHON_KEYRING_BACKEND=BACKEND,
        PYTHONUSERBASE=site.getuserbase(),  # keep `pip --user` installs visible
    )
    env = {**os.environ, **overrides}
    procs = []
    started = time.monotonic()
    try:
        config = f"--config-file={root / 'bus.conf'}"
        dbus_argv = ["dbus-daemon", config, "--nofork", "--print-address=1"]
        dbus = _spawn(dbus_argv, env, root, subprocess.DEVNULL, subprocess.PIPE)
        procs.append(dbus)
        env["DBUS_SESSION_BUS_ADDRESS"] = _read_address(dbus, root)
        overrides["DBUS_SESSION_BUS_ADDRESS"] = env["DBUS_SESSION_BUS_ADDRESS"]

        keyring_daemon = _spawn(GNOME_KEYRING.split(), env, root, subprocess.PIPE)
        procs.append(keyring_daemon)
        keyring_daemon.stdin.write(PASSWORD)  # --unlock reads it up to EOF
        keyring_daemon.stdin.close()

        _wait_ready(env, procs, root)
        overrides.ready_seconds = time.monotonic() - started
        overrides.pids = {p.args[0]: p.pid for p in procs}
        yield overrides
    finally:
        for proc in reversed(procs):
            _stop(proc)
