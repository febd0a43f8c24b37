"""Checks for the private Secret Service fixture in tests/helpers/secret_service.py."""

import os
import subprocess
import sys

from helpers.secret_service import NO_KEYRING_ENV


def run_python(code, overrides):
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **overrides},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_round_trip_across_processes(secret_service):
    stored = run_python(
        'import keyring; keyring.set_password("bsecrets-test", "u", "v")',
        secret_service,
    )
    assert stored.returncode == 0, stored.stderr

    read = run_python(
        "import keyring\n"
        "print(type(keyring.get_keyring()).__module__)\n"
        'print(keyring.get_password("bsecrets-test", "u"))',
        secret_service,
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == ["keyring.backends.SecretService", "v"]


def test_no_keyring_raises_no_keyring_error():
    result = run_python(
        "import keyring\n"
        "try:\n"
        '    keyring.get_password("bsecrets-test", "u")\n'
        "except Exception as exc:\n"
        "    print(type(exc).__module__, type(exc).__name__)\n",
        NO_KEYRING_ENV,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "keyring.errors NoKeyringError"


def test_daemons_alive_during_session(secret_service):
    assert set(secret_service.pids) == {"dbus-daemon", "gnome-keyring-daemon"}
    for pid in secret_service.pids.values():
        os.kill(pid, 0)  # raises ProcessLookupError if the daemon is gone
