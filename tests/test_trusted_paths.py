"""Files and folders someone else controls are refused, as ssh's StrictModes and
git's safe.directory do: the profile (it names where VAULT_TOKEN and values
go), the vault, session files and every folder on their way, the parsed-profile
cache; and a plain http:// endpoint to another host is warned about.

Ownership needs a second user: as root (CI), files are given to nobody (65534)
with chown; a few tests run the CLI as nobody (a forked child that drops root),
against files root owns, in a folder under /tmp that nobody can traverse. They
skip when not root.
No test sends a packet to a non-loopback address: the http warning is checked
in-process with sockets to anything but loopback refused.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import Result, invoke
from helpers.values import PASSPHRASE

from bsecrets.backends.cleartext import cleartext_endpoint, cleartext_warning, is_loopback
from bsecrets.config import cache as profile_cache
from bsecrets.config.cache import load_profile_cached
from bsecrets.errors import InsecureFile
from bsecrets.files import check_trusted_dirs, check_trusted_file

NOBODY = 65534
STRANGER = 12345  # another user without a passwd entry
AS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not AS_ROOT, reason="needs root to give files to another user")


def assert_refused(result: Any, *needles: str) -> None:
    """Exit 4 with exactly one error: line and one hint: line, no traceback."""
    lines = result.stderr.splitlines()
    assert result.exit_code == 4, result.stderr
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def give_away(path: Path, uid: int = NOBODY) -> None:
    os.chown(path, uid, uid, follow_symlinks=False)


def absolute_vault(work: Path) -> None:
    """Make the profile's vault_file absolute, so that a link to it elsewhere works."""
    path = work / "bsecrets.yaml"
    vault_file = work / ".bsecrets" / "vault.db"
    path.write_text(path.read_text().replace(".bsecrets/vault.db", str(vault_file)))


def sticky_tmp(folder: Path, uid: int = 0) -> Path:
    """A folder like /tmp: mode 1777, owned by ``uid``."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o1777)
    os.chown(folder, uid, uid)
    return folder


def nothing_cached() -> bool:
    folder = Path(profile_cache.cache_dir())
    return not folder.exists() or not any(folder.iterdir())


# --- the profile ---------------------------------------------------------------


@needs_root
def test_profile_of_another_user_found_upward_is_refused(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    give_away(vault / "bsecrets.yaml")
    (vault / "sub").mkdir()
    monkeypatch.chdir(vault / "sub")
    result = invoke(["ls"])
    assert_refused(
        result,
        f"profile {vault / 'bsecrets.yaml'} (found upward from {vault / 'sub'})",
        "belongs to another user (nobody, uid 65534)",
        "-p PATH or BSECRETS_PROFILE=PATH",
        f"chown root {vault / 'bsecrets.yaml'}",
    )
    assert nothing_cached()


@needs_root
@pytest.mark.parametrize("how", ["flag", "env"])
def test_explicit_profile_of_another_user_is_refused(
    vault: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: str
) -> None:
    path = vault / "bsecrets.yaml"
    give_away(path)
    monkeypatch.chdir(tmp_path)
    if how == "flag":
        result = invoke(["-p", str(path), "ls"])
    else:
        monkeypatch.setenv("BSECRETS_PROFILE", str(path))
        result = invoke(["ls"])
    # (Settings folds BSECRETS_PROFILE into the flag's value: both say "from --profile")
    assert_refused(result, f"profile {path} (from --profile) belongs to another user")


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666, 0o620], ids=oct)
def test_profile_others_can_write_is_refused(vault: Path, mode: int) -> None:
    path = vault / "bsecrets.yaml"
    path.chmod(mode)
    result = invoke(["ls"])
    assert_refused(result, f"profile {path}", "can be written by other users", f"chmod go-w {path}")


def test_profile_in_the_user_config_folder_is_checked_too(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute_vault(vault)
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "bsecrets"
    config.mkdir(parents=True)
    shutil.copy(vault / "bsecrets.yaml", config / "profile.yaml")
    monkeypatch.chdir(tmp_path)  # no bsecrets.yaml from here up
    assert invoke(["ls"]).exit_code == 0
    config.chmod(0o777)
    assert_refused(invoke(["ls"]), "(the user config file)", f"chmod go-w {config}")


def test_profile_others_can_read_is_fine(vault: Path) -> None:
    (vault / "bsecrets.yaml").chmod(0o644)  # not a secret
    assert invoke(["ls"]).exit_code == 0


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o757, 0o775], ids=oct)
def test_profile_in_a_folder_others_can_write_is_refused(vault: Path, mode: int) -> None:
    vault.chmod(mode)
    result = invoke(["ls"])
    assert_refused(
        result, "is under a folder that can be written by other users", f"chmod go-w {vault}"
    )
    assert nothing_cached()


def test_a_folder_higher_up_others_can_write_is_refused(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only the profile's own folder: every folder up to '/'."""
    absolute_vault(vault)  # the copy below opens the same vault
    high = tmp_path / "open"
    project = high / "a" / "b"
    project.mkdir(parents=True)
    shutil.copy(vault / "bsecrets.yaml", project / "bsecrets.yaml")
    high.chmod(0o777)
    monkeypatch.chdir(project)
    assert_refused(invoke(["ls"]), f"(mode 777): {high}")


@needs_root
def test_profile_in_a_folder_of_another_user_is_refused(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute_vault(vault)  # the copy below opens the same vault
    theirs = tmp_path / "theirs"
    (theirs / "project").mkdir(parents=True)
    shutil.copy(vault / "bsecrets.yaml", theirs / "project" / "bsecrets.yaml")
    give_away(theirs)
    monkeypatch.chdir(theirs / "project")
    assert_refused(
        invoke(["ls"]), "is under a folder that belongs to another user (nobody", str(theirs)
    )


@needs_root
def test_sticky_folder_not_owned_by_root_is_refused(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sticky stops others from renaming your entries, but not the folder's owner."""
    absolute_vault(vault)  # the copy below opens the same vault
    shared = sticky_tmp(tmp_path / "shared", NOBODY)
    (shared / "project").mkdir()
    shutil.copy(vault / "bsecrets.yaml", shared / "project" / "bsecrets.yaml")
    monkeypatch.chdir(shared / "project")
    assert_refused(invoke(["ls"]), str(shared))


def test_sticky_folder_of_root_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like /tmp itself: root's, 1777."""
    if not AS_ROOT:
        pytest.skip("needs root to make a root-owned folder")
    project = sticky_tmp(tmp_path / "tmp") / "project"
    project.mkdir(mode=0o700)
    monkeypatch.chdir(project)
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    assert invoke(["init"]).exit_code == 0
    assert invoke(["put", "a"], input="1").exit_code == 0
    assert invoke(["get", "a"]).stdout == "1\n"


@needs_root
def test_symlinked_profile_pointing_to_a_file_of_another_user_is_refused(
    vault: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real = elsewhere / "real.yaml"
    (vault / "bsecrets.yaml").rename(real)
    (vault / "bsecrets.yaml").symlink_to(real)
    give_away(real)
    assert_refused(invoke(["ls"]), "belongs to another user")


def test_symlinked_profile_pointing_into_a_folder_others_can_write_is_refused(
    vault: Path, tmp_path: Path
) -> None:
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    real = open_folder / "real.yaml"
    (vault / "bsecrets.yaml").rename(real)
    (vault / "bsecrets.yaml").symlink_to(real)
    open_folder.chmod(0o777)
    assert_refused(invoke(["ls"]), f": {open_folder}")


def test_dotdot_after_a_symlink_is_followed_as_the_kernel_does(vault: Path, tmp_path: Path) -> None:
    """good/link/../bsecrets.yaml is open/bsecrets.yaml when link -> open/sub, not
    good/bsecrets.yaml as a textual clean-up would say."""
    absolute_vault(vault)  # the copy below opens the same vault
    good, open_folder = tmp_path / "good", tmp_path / "open"
    (open_folder / "sub").mkdir(parents=True)
    good.mkdir()
    shutil.copy(vault / "bsecrets.yaml", good / "bsecrets.yaml")
    shutil.copy(vault / "bsecrets.yaml", open_folder / "bsecrets.yaml")
    (good / "link").symlink_to(open_folder / "sub")
    open_folder.chmod(0o777)
    assert_refused(invoke(["-p", str(good / "link" / ".." / "bsecrets.yaml"), "ls"]))


@needs_root
def test_symlink_of_another_user_in_a_sticky_folder_is_refused(vault: Path, tmp_path: Path) -> None:
    """In /tmp anyone may make a link; its owner could swap it after the check."""
    absolute_vault(vault)
    tmp = sticky_tmp(tmp_path / "tmp")
    link = tmp / "profile.yaml"
    link.symlink_to(vault / "bsecrets.yaml")
    give_away(link)
    assert_refused(
        invoke(["-p", str(link), "ls"]), "symbolic link that belongs to another user", str(link)
    )
    os.chown(link, 0, 0, follow_symlinks=False)  # the same link, root's: fine
    assert invoke(["-p", str(link), "ls"]).exit_code == 0


def test_symlinked_profile_of_your_own_is_fine(vault: Path, tmp_path: Path) -> None:
    absolute_vault(vault)
    (tmp_path / "mine").mkdir()
    link = tmp_path / "mine" / "p.yaml"
    link.symlink_to(vault / "bsecrets.yaml")
    assert invoke(["-p", str(link), "ls"]).exit_code == 0


# --- the parsed-profile cache ------------------------------------------------------


def test_a_cached_parse_does_not_skip_the_check(vault: Path) -> None:
    """chmod of a folder above the profile leaves the profile's fingerprint as it was."""
    path = vault / "bsecrets.yaml"
    assert invoke(["ls"]).exit_code == 0  # fills the cache
    assert not nothing_cached()
    vault.chmod(0o777)
    with pytest.raises(InsecureFile, match="can be written by other users"):
        load_profile_cached(path)


@needs_root
def test_a_cached_parse_of_a_profile_given_away_is_refused(vault: Path) -> None:
    path = vault / "bsecrets.yaml"
    load_profile_cached(path)
    give_away(path)
    with pytest.raises(InsecureFile, match="belongs to another user"):
        load_profile_cached(path)


def plant_cache_entry(path: Path) -> None:
    """A cache entry for ``path`` that says default_env is prod (the file says dev)."""
    real = load_profile_cached(path)
    folder = Path(profile_cache.cache_dir())
    folder.mkdir(parents=True, exist_ok=True)
    absolute = Path(os.path.abspath(path))
    fingerprint = profile_cache._fingerprint(str(absolute))
    entry = {
        "format": profile_cache.CACHE_FORMAT,
        "fingerprint": fingerprint,
        "profile": profile_cache._to_json(real._replace(default_env="prod")),
    }
    cache_file = folder / profile_cache.entry_name(str(absolute))
    cache_file.write_text(json.dumps(entry))
    cache_file.chmod(0o600)


def test_a_cache_in_a_folder_others_can_write_is_ignored(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = vault / "bsecrets.yaml"
    plant_cache_entry(path)
    (tmp_path / "cache").chmod(0o777)
    assert load_profile_cached(path).default_env == "dev"
    assert invoke(["ls"]).exit_code == 0  # the command still works, without the cache


@needs_root
def test_a_cache_in_a_folder_of_another_user_is_ignored(vault: Path) -> None:
    path = vault / "bsecrets.yaml"
    plant_cache_entry(path)
    give_away(Path(profile_cache.cache_dir()))
    assert load_profile_cached(path).default_env == "dev"


# --- the vault file -----------------------------------------------------------------


@needs_root
def test_vault_folder_of_another_user_is_refused(vault: Path) -> None:
    give_away(vault / ".bsecrets")
    assert_refused(invoke(["ls"]), "vault.db", "belongs to another user", str(vault / ".bsecrets"))


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777], ids=oct)
def test_vault_folder_others_can_write_is_refused(vault: Path, mode: int) -> None:
    (vault / ".bsecrets").chmod(mode)
    assert_refused(
        invoke(["get", "x"]),
        "vault.db is under a folder that can be written by other users",
        f"chmod go-w {vault / '.bsecrets'}",
    )


def test_vault_under_a_folder_others_can_write_is_refused(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The profile is fine; a folder above the vault it names is not."""
    store = tmp_path / "store" / "deep"
    store.mkdir(parents=True)
    (vault / ".bsecrets").rename(store / "v")
    path = vault / "bsecrets.yaml"
    path.write_text(path.read_text().replace(".bsecrets/vault.db", str(store / "v" / "vault.db")))
    assert invoke(["ls"]).exit_code == 0
    (tmp_path / "store").chmod(0o777)
    assert_refused(invoke(["ls"]), "vault.db", str(tmp_path / "store"))


def test_init_under_a_folder_others_can_write_writes_nothing(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_folder = tmp_path / "open"
    open_folder.mkdir(mode=0o777)
    open_folder.chmod(0o777)
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    result = invoke(["-p", str(open_folder / "project" / "bsecrets.yaml"), "init"])
    assert_refused(result, str(open_folder))
    assert list(open_folder.iterdir()) == []


# --- sessions ------------------------------------------------------------------------


@pytest.fixture
def fallback_tmp(vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No runtime folder: sessions fall back to <temp folder>/bsecrets-UID, the temp
    folder being a root-owned 1777 stand-in for /tmp."""
    if not AS_ROOT:
        pytest.skip("needs root to make a root-owned sticky folder")
    if os.path.isdir(f"/run/user/{os.getuid()}"):
        pytest.skip(f"/run/user/{os.getuid()} exists: the temp-folder fallback is not used")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "no-such-runtime-dir"))
    fake_tmp = sticky_tmp(tmp_path / "tmp")
    monkeypatch.setattr(tempfile, "tempdir", str(fake_tmp))
    yield fake_tmp / f"bsecrets-{os.getuid()}"


def test_session_fallback_is_made_private_in_a_sticky_root_folder(fallback_tmp: Path) -> None:
    result = invoke(["unlock"])
    assert result.exit_code == 0, result.stderr
    assert stat.S_IMODE(fallback_tmp.stat().st_mode) == 0o700
    assert len(list((fallback_tmp / "bsecrets" / "sessions").iterdir())) == 1


@pytest.mark.parametrize(
    ("owner", "mode"),
    [(NOBODY, 0o700), (NOBODY, 0o755), (0, 0o777), (0, 0o770), (NOBODY, 0o1777)],
    ids=["nobody-700", "nobody-755", "root-777", "root-770", "nobody-1777"],
)
def test_session_fallback_made_beforehand_by_another_user_or_open_is_refused(
    fallback_tmp: Path, owner: int, mode: int
) -> None:
    fallback_tmp.mkdir()
    fallback_tmp.chmod(mode)
    os.chown(fallback_tmp, owner, owner)
    result = invoke(["unlock"])
    assert_refused(result, "session folder", str(fallback_tmp))
    assert list(fallback_tmp.iterdir()) == []  # nothing written there
    assert invoke(["lock"]).exit_code == 4


def start_session(monkeypatch: pytest.MonkeyPatch) -> Path:
    result = invoke(["unlock"])
    assert result.exit_code == 0, result.stderr
    monkeypatch.setenv("BSECRETS_SESSION", result.stdout.strip().split("=", 1)[1])
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    (session_file,) = (Path(os.environ["XDG_RUNTIME_DIR"]) / "bsecrets" / "sessions").iterdir()
    assert invoke(["ls"]).exit_code == 0
    return session_file


@needs_root
def test_session_folder_of_another_user_is_refused(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_file = start_session(monkeypatch)
    give_away(session_file.parent)  # the file is still yours, 0600
    assert_refused(invoke(["get", "x"]), "belongs to another user", str(session_file.parent))
    assert_refused(invoke(["lock"]), "session folder")


def test_runtime_folder_others_can_write_is_refused(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_file = start_session(monkeypatch)
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    runtime.chmod(0o777)
    assert_refused(invoke(["get", "x"]), f"chmod go-w {runtime}")
    assert_refused(invoke(["lock"]), f"chmod go-w {runtime}")
    assert session_file.exists()


@needs_root
def test_session_file_of_another_user_is_refused(
    vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Already refused before this change (the last component was checked); kept
    here with the rest of the class."""
    session_file = start_session(monkeypatch)
    give_away(session_file)
    assert_refused(invoke(["get", "x"]), "belongs to another user", str(session_file))


# --- the API the passphrase file (and others) use -------------------------------------


def test_tmp_itself_is_a_trusted_folder() -> None:
    st = os.stat("/tmp")
    if st.st_uid != 0 or not st.st_mode & stat.S_ISVTX:
        pytest.skip("/tmp is not root's sticky folder here")
    assert check_trusted_dirs(Path("/tmp")) is True
    assert check_trusted_dirs(Path("/tmp/surely/not/there")) is False


def test_private_file_rules(tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text("x")
    secret.chmod(0o600)
    assert check_trusted_file(secret, private=True) is not None
    secret.chmod(0o640)
    with pytest.raises(InsecureFile, match="can be read by other users"):
        check_trusted_file(secret, private=True, what="passphrase file")
    assert check_trusted_file(secret, private=False) is not None  # not written by others
    assert check_trusted_file(tmp_path / "missing", private=True) is None


def test_a_pipe_through_dev_fd_is_checked_without_a_path_to_walk() -> None:
    """BSECRETS_PASSPHRASE_FILE=<(...) gives /dev/fd/N: a magic link to a pipe."""
    read, write = os.pipe()
    try:
        found = check_trusted_file(Path(f"/proc/self/fd/{read}"), private=True)
        assert found is not None and stat.S_ISFIFO(found.st_mode)
    finally:
        os.close(read)
        os.close(write)


def test_a_symlink_loop_is_not_an_error_here(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert check_trusted_file(tmp_path / "a", private=True) is None  # open reports ELOOP


# --- as another user (setpriv) ------------------------------------------------------------


@pytest.fixture
def shared(vault: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A root-owned 0755 folder under /tmp that nobody can traverse (pytest's
    tmp_path is 0700), with a home of nobody's inside; removed afterwards.

    The commands run as root first (the ``vault`` fixture, ls, unlock): the
    child that becomes nobody imports nothing new, since the interpreter's own
    files may be out of nobody's reach (e.g. under /root)."""
    if not AS_ROOT:
        pytest.skip("needs root to run as another user")
    assert invoke(["ls"]).exit_code == 0 and invoke(["unlock"]).exit_code == 0
    folder = Path(tempfile.mkdtemp(prefix="bsecrets-trust-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        home = folder / "home"
        (home / "run").mkdir(mode=0o700, parents=True)
        give_away(home)
        give_away(home / "run")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def as_nobody(shared: Path, args: list[str], cwd: Path, **extra: str) -> Result:
    """Run the CLI as uid/gid 65534 with no other groups: a forked child drops root
    (setgroups, setgid, setuid) and runs the command in-process."""
    home = shared / "home"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BSECRETS_", "XDG_", "VAULT_", "AWS_", "TMPDIR"))
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_RUNTIME_DIR=str(home / "run"),
        BSECRETS_INSECURE_TEST_KDF="1",
        BSECRETS_PASSPHRASE=PASSPHRASE,
    )
    env.update(extra)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        payload = [99, "", "the child failed before running the command"]
        try:
            os.close(read)
            os.environ.clear()
            os.environ.update(env)
            tempfile.tempdir = None  # read TMPDIR again
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.chdir(cwd)
            result = invoke(args)
            payload = [result.exit_code, result.stdout, result.stderr]
        except BaseException as exc:
            payload[2] = f"the child failed: {exc!r}"
        finally:
            os.write(write, json.dumps(payload).encode())
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    code, stdout, stderr = json.loads(b"".join(chunks))
    return Result(code, stdout, stderr, stdout.encode())


def test_as_another_user_a_profile_root_owns_is_trusted(shared: Path) -> None:
    home = shared / "home"
    made = as_nobody(shared, ["-p", str(home / "own.yaml"), "init"], cwd=home)
    assert made.exit_code == 0, made.stderr
    project = shared / "project"  # root's, 0755
    (project / "sub").mkdir(parents=True, mode=0o755)
    project.chmod(0o755)
    (project / "sub").chmod(0o755)
    profile = project / "bsecrets.yaml"
    text = (home / "own.yaml").read_text()
    profile.write_text(text.replace(".bsecrets/vault.db", str(home / ".bsecrets" / "vault.db")))
    profile.chmod(0o644)
    result = as_nobody(shared, ["ls"], cwd=project / "sub")  # found upward
    assert result.exit_code == 0, result.stderr
    # the same profile owned by a third user is refused
    os.chown(profile, STRANGER, STRANGER)
    result = as_nobody(shared, ["ls"], cwd=project / "sub")
    assert result.exit_code == 4, result.stderr
    assert "belongs to another user (uid 12345)" in result.stderr
    assert "Traceback" not in result.stderr


def test_as_another_user_a_session_fallback_someone_made_is_refused(shared: Path) -> None:
    """nobody's /tmp/bsecrets-65534, made beforehand by a third user, 0777."""
    if os.path.isdir(f"/run/user/{NOBODY}"):
        pytest.skip(f"/run/user/{NOBODY} exists: the temp-folder fallback is not used")
    home = shared / "home"
    made = as_nobody(shared, ["-p", str(home / "own.yaml"), "init"], cwd=home)
    assert made.exit_code == 0, made.stderr
    fake_tmp = sticky_tmp(shared / "tmp")
    planted = fake_tmp / f"bsecrets-{NOBODY}"
    planted.mkdir()
    planted.chmod(0o777)
    os.chown(planted, STRANGER, STRANGER)
    result = as_nobody(
        shared,
        ["-p", str(home / "own.yaml"), "unlock"],
        cwd=home,
        TMPDIR=str(fake_tmp),
        XDG_RUNTIME_DIR=str(home / "no-such-runtime-dir"),
    )
    assert result.exit_code == 4, result.stderr
    assert "session folder" in result.stderr and str(planted) in result.stderr
    assert list(planted.iterdir()) == []


# --- plain http:// to another host ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://10.255.255.1:8200", "http://10.255.255.1:8200"),
        ("http://vault.example.com", "http://vault.example.com"),
        ("http://user:s3cret@vault.example.com:8200/v1/x?q=1", "http://vault.example.com:8200"),
        ("HTTP://Vault.Example.com:80", "http://vault.example.com:80"),
        ("http://[fe80::1%25eth0]:8200", "http://[fe80::1%25eth0]:8200"),
        ("http://localhost.example.com:8200", "http://localhost.example.com:8200"),
        ("http://127.0.0.1.nip.io:8200", "http://127.0.0.1.nip.io:8200"),
        ("http://0.0.0.0:8200", "http://0.0.0.0:8200"),
        ("https://10.255.255.1:8200", None),
        ("http://127.0.0.1:8200", None),
        ("http://127.45.6.7", None),
        ("http://[::1]:8200", None),
        ("http://[::ffff:127.0.0.1]:8200", None),
        ("http://localhost:8200", None),
        ("http://LOCALHOST.:8200", None),
    ],
)
def test_cleartext_endpoint(url: str, shown: str | None) -> None:
    assert cleartext_endpoint(url) == shown


def test_cleartext_warning_is_one_line_per_environment() -> None:
    text = cleartext_warning(
        "prod",
        [
            ("http://10.0.0.5:4566", "AWS_ENDPOINT_URL"),
            ("http://10.0.0.5:4566", "AWS_ENDPOINT_URL"),
            ("https://sts.amazonaws.com", "AWS_ENDPOINT_URL_STS"),
        ],
    )
    assert text is not None and "\n" not in text
    assert text.count("http://10.0.0.5:4566") == 1
    assert "--insecure-http" in text and "environments.prod.insecure_http: true" in text
    assert cleartext_warning("prod", [("https://x", "AWS_ENDPOINT_URL")]) is None
    assert is_loopback("127.0.0.1") and not is_loopback("example.invalid")


@pytest.fixture
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Refuse, in this process, every name lookup and connection not to loopback."""
    attempts: list[str] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(str(host)):
            attempts.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, "blocked by the test")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and not is_loopback(str(address[0])):
            attempts.append(str(address[0]))
            raise OSError(101, "blocked by the test")
        real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


TOKEN = "s.token-canary-7e6d5c"


# AppRole with its variables unset: the command stops before any request (exit 4)
NO_LOGIN = {"method": "approle", "role_id_env": "NO_ROLE_ID", "secret_id_env": "NO_SECRET_ID"}


def remote_profile(work: Path, monkeypatch: pytest.MonkeyPatch, **staging: Any) -> None:
    from helpers.vault_env import write_profile

    env = {"backend": "vault", "prefix": "app", **staging}
    write_profile(work, monkeypatch, {"staging": env})
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_vault_over_plain_http_to_another_host_warns_once(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, only_loopback: list[str]
) -> None:
    remote_profile(isolated, monkeypatch, address="http://10.255.255.1:8200")
    result = invoke(["get", "db", "-e", "staging"])
    assert result.exit_code == 6, result.stderr  # the connection itself was blocked
    assert only_loopback  # and it was about to be made
    (line,) = warnings(result.stderr)
    assert "http://10.255.255.1:8200 (from environments.staging.address)" in line
    assert "without TLS" in line and "--insecure-http" in line
    assert TOKEN not in result.stderr


@pytest.mark.parametrize("how", ["flag", "env", "profile"])
def test_the_http_warning_can_be_silenced(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, only_loopback: list[str], how: str
) -> None:
    extra = {"insecure_http": True} if how == "profile" else {}
    remote_profile(
        isolated, monkeypatch, address="http://10.255.255.1:8200", auth=NO_LOGIN, **extra
    )
    if how == "env":
        monkeypatch.setenv("BSECRETS_INSECURE_HTTP", "1")
    args = ["--insecure-http"] if how == "flag" else []
    result = invoke([*args, "get", "db", "-e", "staging"])
    assert result.exit_code == 4 and "NO_ROLE_ID" in result.stderr, result.stderr
    assert warnings(result.stderr) == []
    assert only_loopback == []
    if how != "profile":  # the same run without the switch warns
        monkeypatch.delenv("BSECRETS_INSECURE_HTTP", raising=False)
        assert len(warnings(invoke(["get", "db", "-e", "staging"]).stderr)) == 1


def test_vault_addr_over_plain_http_names_the_variable(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, only_loopback: list[str]
) -> None:
    remote_profile(isolated, monkeypatch, auth=NO_LOGIN)
    monkeypatch.setenv("VAULT_ADDR", "http://vault.example.invalid:8200")
    result = invoke(["get", "db", "-e", "staging"])
    assert result.exit_code == 4, result.stderr
    (line,) = warnings(result.stderr)
    assert "http://vault.example.invalid:8200 (from VAULT_ADDR)" in line


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "[::1]"])
def test_loopback_over_plain_http_does_not_warn(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, only_loopback: list[str], host: str
) -> None:
    remote_profile(isolated, monkeypatch, address=f"http://{host}:1", auth=NO_LOGIN)
    result = invoke(["get", "db", "-e", "staging"])
    assert result.exit_code == 4, result.stderr
    assert warnings(result.stderr) == []
    assert only_loopback == []


def test_aws_endpoint_over_plain_http_warns_once(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, only_loopback: list[str]
) -> None:
    from helpers.aws_env import write_profile

    write_profile(isolated, region="eu-west-1", endpoint_url="http://10.255.255.1:4566")
    monkeypatch.setenv("BSECRETS_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = invoke(["get", "db", "-e", "prod"])
    assert result.exit_code == 6, result.stderr
    (line,) = warnings(result.stderr)
    assert "http://10.255.255.1:4566 (from environments.prod.endpoint_url)" in line


def test_aws_endpoint_variable_over_plain_http_warns(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, only_loopback: list[str]
) -> None:
    from helpers.aws_env import write_profile

    write_profile(isolated, region="eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://10.255.255.1:4566")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = invoke(["get", "db", "-e", "prod"])
    (line,) = warnings(result.stderr)
    assert "(from AWS_ENDPOINT_URL)" in line


@pytest.mark.parametrize(
    ("env", "value", "problem"),
    [
        ("backend: vault\n    prefix: p", "maybe", "must be true or false"),
        ("backend: local", "true", "not used by backend local"),
    ],
)
def test_insecure_http_key_is_validated(isolated: Path, env: str, value: str, problem: str) -> None:
    (isolated / "bsecrets.yaml").write_text(
        f"version: 1\nenvironments:\n  dev:\n    {env}\n    insecure_http: {value}\n"
    )
    result = invoke(["ls"])
    assert result.exit_code == 2, result.stderr
    assert "bsecrets.yaml:" in result.stderr and "environments.dev.insecure_http" in result.stderr
    assert problem in result.stderr


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o757])
def test_passphrase_file_in_a_folder_others_can_write_is_refused(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    """The file itself is yours and 0600, but another user could rename it away and
    put their own in its place: exit 4, as for the profile."""
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o700)
    passfile = folder / "pass"
    passfile.write_text(PASSPHRASE)
    passfile.chmod(0o600)
    folder.chmod(mode)
    monkeypatch.delenv("BSECRETS_PASSPHRASE")
    monkeypatch.setenv("BSECRETS_PASSPHRASE_FILE", str(passfile))
    assert_refused(invoke(["ls"]), str(folder))
    folder.chmod(0o700)
    assert invoke(["ls"]).exit_code == 0
