"""Doctor's file checks: who may read or change the vault file, its folder and the
session files, and expired sessions left on disk.

bsecrets refuses a vault or session file that others can read or write, or one under
a folder they can write (bsecrets/files.py): such a mode is a FAIL, since every
command stops there; a folder of the vault that others can only list is a WARN. With
``--fix``: files to 0600, bsecrets' own folders to 0700, each change named; a file or
folder of another user, or a folder that holds more than the vault, is left to the
operator (the hint says how). Expired sessions are deleted, as opening one would.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from bsecrets.errors import BsecretsError, InsecureFile
from bsecrets.files import check_trusted_dirs
from bsecrets.services.doctor.findings import Finding, Status
from bsecrets.timeutil import parse_iso
from bsecrets.vaultfile import session
from bsecrets.vaultfile.connection import SIDECARS

if TYPE_CHECKING:
    from datetime import datetime

    from bsecrets.services.manager import SecretsManager

FILE_MODE, FOLDER_MODE = 0o600, 0o700
_CHECK_VAULT, _CHECK_SESSIONS = "permissions.vault", "permissions.sessions"


def check_files(manager: SecretsManager, fix: bool) -> list[Finding]:
    """The vault file and its folder, the session folder and files, stale sessions."""
    return [
        _vault_permissions(manager, fix),
        _session_permissions(fix),
        _stale_sessions(manager.clock(), fix),
    ]


def _mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):o}"


class _Survey:
    """Problems found on a set of paths, and what --fix changed."""

    def __init__(self, fix: bool) -> None:
        self.fix = fix
        self.failed: list[str] = []  # bsecrets refuses these
        self.warned: list[str] = []  # tolerated, but too open
        self.manual: list[str] = []  # what to run (--fix runs the chmods)
        self.fixable = False  # a chmod --fix would make
        self.fixed: list[str] = []

    def file(self, path: Path, what: str) -> None:
        """A private file: yours, 0600 at most."""
        try:
            st = os.lstat(path)
        except OSError:
            return  # absent: nothing to check
        if not stat.S_ISREG(st.st_mode):
            return
        if st.st_uid != os.geteuid():
            self.failed.append(f"{what} {path} belongs to another user (uid {st.st_uid})")
            self.manual.append(f"use your own copy, or chown it if you trust it: {path}")
        elif st.st_mode & 0o077:
            self._loose(path, st, what, FILE_MODE, refused=True)

    def folder(self, path: Path, what: str, *, ours: bool) -> None:
        """A private folder: yours, not writable by others (else refused), 0700 at best.
        ``ours``: bsecrets' own folder, which --fix may chmod."""
        try:
            st = os.stat(path)
        except OSError:
            return
        if st.st_uid != os.geteuid():
            if st.st_mode & 0o022:
                self.failed.append(f"{what} {path} belongs to another user and others can write it")
                self.manual.append(f"move it to a folder you own: {path}")
            return
        if not st.st_mode & 0o077:
            return
        refused = bool(st.st_mode & 0o022)
        if ours:
            self._loose(path, st, what, FOLDER_MODE, refused=refused)
            return
        (self.failed if refused else self.warned).append(
            f"{what} {path} is open to other users (mode {_mode(st)}) and holds more than "
            "bsecrets' files"
        )
        self.manual.append(
            f"chmod go-w {path}"
            if refused
            else f"chmod 700 {path}, or move the vault to a folder of its own"
        )

    def _loose(
        self, path: Path, st: os.stat_result, what: str, mode: int, *, refused: bool
    ) -> None:
        was = _mode(st)
        if self.fix:
            try:
                os.chmod(path, mode)
            except OSError as exc:
                self.failed.append(f"{what} {path} is mode {was}; chmod failed: {exc.strerror}")
                return
            self.fixed.append(f"chmod {mode:o} {path} (was {was})")
            return
        (self.failed if refused else self.warned).append(
            f"{what} {path} is open to other users (mode {was})"
            + (": bsecrets refuses it" if refused else "")
        )
        self.manual.append(f"chmod {mode:o} {path}")
        self.fixable = True

    def finding(self, check: str, ok: str) -> Finding:
        fixed = "; ".join(self.fixed) or None
        hint = "; ".join(dict.fromkeys(self.manual)) or None
        if self.fixable:
            hint = f"bsecrets doctor --fix, or: {hint}"
        if self.failed:
            detail = "; ".join(self.failed + self.warned)
            return Finding(check, Status.FAIL, detail, hint, fixed=fixed)
        if self.warned:
            return Finding(check, Status.WARN, "; ".join(self.warned), hint, fixed=fixed)
        return Finding(check, Status.OK, ok, fixed=fixed)


def _own_folder(folder: Path, vault_file: Path) -> bool:
    """Whether ``folder`` holds only the vault and its own files (bsecrets' folder)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return all(name.startswith(vault_file.name) or name == ".gitignore" for name in names)


def _vault_permissions(manager: SecretsManager, fix: bool) -> Finding:
    path = Path(manager.profile.vault_file)
    if not path.exists():
        return Finding(_CHECK_VAULT, Status.SKIP, f"no vault file at {path}")
    survey = _Survey(fix)
    folder = path.parent
    survey.folder(folder, "the vault's folder", ours=_own_folder(folder, path))
    survey.file(path, "the vault file")
    for suffix in SIDECARS:
        survey.file(Path(f"{path}{suffix}"), "SQLite's file")
    try:
        check_trusted_dirs(folder.parent, what="folder")
    except InsecureFile as exc:  # above the vault: not bsecrets' to change
        survey.failed.append(f"the vault's folder is under an unsafe folder: {exc.message}")
        survey.manual.append(exc.hint or "move the vault to a folder you own")
    return survey.finding(_CHECK_VAULT, f"{path} is 0600 and its folder private")


def session_folder() -> Path:
    """The session folder (vaultfile/session.py), also when it is refused as unsafe."""
    try:
        return Path(session.session_dir())
    except InsecureFile:
        pass
    return Path(session.session_path())  # to name the folder and fix it


def _session_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.glob("*.json") if p.is_file())
    except OSError:
        return []


def _session_permissions(fix: bool) -> Finding:
    folder = session_folder()
    if not folder.is_dir():
        return Finding(_CHECK_SESSIONS, Status.OK, f"no session folder yet ({folder})")
    survey = _Survey(fix)
    survey.folder(folder.parent, "the session folder", ours=True)
    survey.folder(folder, "the session folder", ours=True)
    for path in _session_files(folder):
        survey.file(path, "the session file")
    return survey.finding(_CHECK_SESSIONS, f"{folder} and its session files are private")


def _expiry(path: Path) -> datetime | None:
    """When the session in ``path`` expires; None if the file is not a session's."""
    try:
        body = json.loads(path.read_bytes())
        return parse_iso(str(body["expires_at"]))
    except (OSError, ValueError, KeyError, TypeError, BsecretsError):
        return None


def _stale_sessions(now: datetime, fix: bool) -> Finding:
    check = "sessions.stale"
    folder = session_folder()
    stale, unreadable = [], []
    for path in _session_files(folder):
        expires = _expiry(path)
        if expires is None:
            unreadable.append(path.name)
        elif expires <= now:
            stale.append(path)
    notes = []
    if unreadable:
        notes.append(
            f"{len(unreadable)} file(s) in {folder} are not sessions: {', '.join(unreadable)}"
        )
    if not stale:
        if notes:
            return Finding(check, Status.WARN, "; ".join(notes), "look at them, then remove them")
        return Finding(check, Status.OK, "no expired session left on disk")
    count = f"{len(stale)} expired session file{'s' if len(stale) > 1 else ''}"
    if fix:
        removed = 0
        for path in stale:
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                removed += 1  # gone meanwhile (opened and removed by another command)
            except OSError:
                continue
        status = Status.WARN if notes or removed < len(stale) else Status.OK
        return Finding(check, status, "; ".join([f"{count} in {folder}", *notes]),
                       fixed=f"removed {removed} expired session file(s)")  # fmt: skip
    detail = "; ".join([f"{count} left in {folder} (no longer usable)", *notes])
    return Finding(check, Status.WARN, detail, "bsecrets doctor --fix removes them")
