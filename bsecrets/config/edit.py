"""Editing the profile in place: ``env add``, ``env rm``, ``env default`` and the
merge of ``init --force``.

What callers may rely on:

* The file keeps what the edit does not touch: comments, key order, quoting and
  flow style, as far as YAML round-tripping allows (ruamel.yaml's round-trip
  mode). A comment block after the last environment stays when that
  environment is removed (it moves to the one before).
* Both the profile as it is and the edited text are validated by the profile
  parser (bsecrets.config.parser) before anything is written: a profile
  that is already broken is reported with its file:line (exit 2) and left as it
  is, and an edit that would make it invalid is refused.
* The new text replaces the file atomically (bsecrets.files.
  write_private_file: a temporary file, fsync, rename; mode 0600), so a reader
  sees the old profile or the new one, and the parsed-profile cache, keyed on
  the inode, sees the change. The profile's trust check runs first.
* Edits of profiles in one folder are serialised by an flock on the folder
  (:func:`profile_lock`), so two concurrent edits never lose one another's change.
* ruamel.yaml is imported only here, inside the functions that edit: never on
  the everyday command path.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bsecrets.config.loader import check_profile_file, load_profile
from bsecrets.config.profile import (
    AUTH_METHODS,
    BACKEND_KEYS,
    BACKENDS,
    ENV_NAME_HINT,
    ENV_NAME_PATTERN,
    EnvironmentConfig,
    Profile,
)
from bsecrets.errors import AlreadyExists, Conflict, NextStep, UsageError
from bsecrets.files import ensure_private_dir, storage_error, write_private_file

if TYPE_CHECKING:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap


def backend_keys(backend: str) -> tuple[str, ...]:
    """The profile keys an environment on ``backend`` takes besides ``backend`` and
    ``protected`` (UsageError, exit 2, for an unknown backend)."""
    check_backend(backend)
    return BACKEND_KEYS[backend]


def auth_keys(method: str) -> tuple[str, ...]:
    """The keys of a Vault ``auth:`` mapping with this method, besides ``method``."""
    if method not in AUTH_METHODS:
        raise UsageError(
            f"unknown Vault auth method '{method}'",
            hint=f"one of: {', '.join(AUTH_METHODS)}",
        )
    required, optional = AUTH_METHODS[method]
    return (*required, *optional)


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend '{backend}'", hint=f"one of: {', '.join(BACKENDS)}")


def check_env_name(name: str) -> None:
    if not re.fullmatch(ENV_NAME_PATTERN, name):
        shown = repr(name) if len(name) <= 64 else f"({len(name)} characters)"
        raise UsageError(f"invalid environment name {shown}", hint=ENV_NAME_HINT)


@contextlib.contextmanager
def profile_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on the profile's folder (created 0700 if missing)
    while reading, changing and writing the profile."""
    import fcntl

    ensure_private_dir(path.parent)
    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise storage_error(exc, path.parent) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def read_profile(path: Path) -> tuple[str, Profile]:
    """The profile's text and its validated form (the usual errors of load_profile)."""
    load_profile(path)  # trust check, ProfileNotFound, ProfileError with lines, UTF-8
    text = Path(path).read_bytes().decode("utf-8")
    return text, validate(text, path)  # this very text: another editor may have written


def validate(text: str, path: Path) -> Profile:
    """``text`` parsed as the profile at ``path`` would be (ProfileError, exit 2)."""
    from bsecrets.config.parser import parse_profile  # the parser seam (config/loader.py)

    return parse_profile(text, str(path), os.path.abspath(path))


class ProfileDocument:
    """A profile's YAML, loaded for a round trip. Edit, then take :attr:`text`."""

    def __init__(self, text: str) -> None:
        from ruamel.yaml import YAML
        from ruamel.yaml.util import load_yaml_guess_indent

        _, indent, block_seq_indent = load_yaml_guess_indent(text)
        yaml = YAML()  # round-trip: comments, order, quotes, flow style
        yaml.preserve_quotes = True
        yaml.width = 4096  # never fold a long value onto a second line
        offset = block_seq_indent or 0
        yaml.indent(mapping=indent or 2, sequence=(indent or 2) + offset, offset=offset)
        self._yaml: YAML = yaml
        self.root: CommentedMap = yaml.load(text)

    @property
    def text(self) -> str:
        out = io.StringIO()
        self._yaml.dump(self.root, out)
        return out.getvalue()

    @property
    def environments(self) -> CommentedMap:
        envs: CommentedMap = self.root["environments"]
        return envs

    def add_environment(self, name: str, entry: Mapping[str, Any]) -> None:
        """Append environment ``name`` (after the others, before the comment lines that
        end the section) with ``entry``'s keys in order."""
        envs = self.environments
        last = list(envs)[-1] if len(envs) else None
        envs[_scalar(name)] = _node(entry)
        if last is not None:
            _move_trailing_comment(envs, last, name)

    def remove_environment(self, name: str) -> None:
        envs = self.environments
        keys = list(envs)
        index = keys.index(name)
        if index == len(keys) - 1 and index > 0:
            _move_trailing_comment(envs, keys[index], keys[index - 1])
        del envs[name]

    def set_default(self, name: str) -> None:
        if "default_env" in self.root:
            self.root["default_env"] = _scalar(name)
            return
        keys = list(self.root)
        position = keys.index("version") + 1 if "version" in keys else 0
        self.root.insert(position, "default_env", _scalar(name))


def _scalar(value: str) -> Any:
    """``value`` as a YAML string that PyYAML (which the parser uses, YAML 1.1) reads
    back as the same string: plain when it can be, double-quoted otherwise
    (``"on"``, ``"1.0"``, ``"yes"``)."""
    import yaml
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    if re.fullmatch(r"[A-Za-z0-9_./~:-]+", value) and yaml.safe_load(value) == value:
        return value
    return DoubleQuotedScalarString(value)


def _node(value: Any) -> Any:
    from ruamel.yaml.comments import CommentedMap

    if isinstance(value, Mapping):
        node = CommentedMap()
        for key, item in value.items():
            node[_scalar(key)] = _node(item)
        return node
    return _scalar(value) if isinstance(value, str) else value


def _last_entry(node: Any) -> tuple[Any, Any] | None:
    """(mapping, key) of the last line of a block mapping's subtree: where ruamel keeps
    the comment lines that follow it. None when ``node`` is not a block mapping."""
    from ruamel.yaml.comments import CommentedMap

    owner = None
    while isinstance(node, CommentedMap) and len(node) and not node.fa.flow_style():
        key = list(node)[-1]
        owner = (node, key)
        node = node[key]
    return owner


def _move_trailing_comment(envs: Any, source: str, target: str) -> None:
    """The comment lines after the last environment (``# Remote backends look like
    this...`` in a profile from ``init``) belong to the section, not to that
    environment: move them after ``target``, the environment that becomes last."""
    from ruamel.yaml.tokens import CommentToken

    owner, key = _last_entry(envs[source]) or (envs, source)
    slots = owner.ca.items.get(key)
    token = slots[2] if slots and len(slots) > 2 else None
    if token is None or "\n" not in token.value:
        return
    # The first line ends the source's last line (with its own comment, if any):
    # it stays there. The lines after it move.
    first, following = token.value.split("\n", 1)
    if not following.strip():
        return
    token.value = first + "\n"  # in place: the token keeps the comment's column
    owner, key = _last_entry(envs[target]) or (envs, target)
    slots = owner.ca.items.setdefault(key, [None, None, None, None])
    if slots[2] is None:
        slots[2] = CommentToken("\n" + following, token.start_mark, None)
    else:
        slots[2].value += following


def edit(path: Path, change: Callable[[ProfileDocument, Profile], None]) -> Profile:
    """Under the profile lock: read and validate the profile, apply ``change`` (which
    may raise to refuse), validate the result, write it atomically (not at all when
    the text did not change). Returns the new profile."""
    with profile_lock(path):
        text, current = read_profile(path)
        document = ProfileDocument(text)
        change(document, current)
        new_text = document.text
        if new_text == text:
            return current
        profile = validate(new_text, path)
        check_profile_file(path)  # again, just before replacing it
        write_private_file(path, new_text.encode())
    return profile


def add_environment(
    path: Path,
    name: str,
    backend: str,
    options: Mapping[str, Any],
    *,
    protected: bool = False,
    check: Callable[[EnvironmentConfig], None] | None = None,
) -> Profile:
    """Add environment ``name`` on ``backend`` with ``options`` (profile keys, in the
    order the profile documents them), appended after the other environments.

    UsageError (exit 2) for a bad name, backend or option, or one the parser
    refuses (then a ProfileError naming ``environments.NAME.KEY``); AlreadyExists
    (exit 7) when the profile has it already. ``check`` gets the new environment
    as parsed, before anything is written, and may raise to refuse it.
    """
    check_env_name(name)
    check_backend(backend)
    allowed = BACKEND_KEYS[backend]
    for key in options:
        if key not in allowed:
            raise UsageError(
                f"'{key}' is not used by backend {backend}",
                hint=f"backend {backend} takes: {', '.join(allowed) or 'no options'}",
            )
    entry: dict[str, Any] = {"backend": backend}
    entry.update((key, options[key]) for key in allowed if options.get(key) is not None)
    if protected:
        entry["protected"] = True

    def change(document: ProfileDocument, current: Profile) -> None:
        if name in current.environments:
            raise AlreadyExists(
                f"environment '{name}' already exists in {current.path}",
                step=NextStep("free_environment_name", name=name),
            )
        document.add_environment(name, entry)
        if check is not None:
            check(validate(document.text, path).environment(name))

    return edit(path, change)


def check_removable(profile: Profile, name: str) -> None:
    """EnvironmentNotFound (exit 3) if ``profile`` has no ``name``; Conflict (exit 7)
    if it is the only environment or the default one."""
    profile.environment(name)
    if len(profile.environments) == 1:
        raise Conflict(
            f"'{name}' is the only environment of {profile.path}",
            hint="a profile needs at least one",
            step=NextStep("add_environment_first"),
        )
    if name == profile.default_env:
        others = [env for env in profile.environments if env != name]
        raise Conflict(
            f"'{name}' is the default environment",
            step=NextStep("choose_other_default_environment", env=others[0]),
        )


def remove_environment(
    path: Path, name: str, *, check: Callable[[Profile], None] | None = None
) -> Profile:
    """Remove environment ``name`` from the profile (never its data: see the CLI).
    Refused as :func:`check_removable` says; ``check`` runs under the profile lock
    with the current profile, before the change (env rm: no secrets left)."""

    def change(document: ProfileDocument, current: Profile) -> None:
        check_removable(current, name)
        if check is not None:
            check(current)
        document.remove_environment(name)

    return edit(path, change)


def set_default_environment(path: Path, name: str) -> tuple[Profile, str]:
    """Make ``name`` the profile's ``default_env``; returns the new profile and the
    previous default. EnvironmentNotFound (exit 3) if there is no such environment."""
    previous: list[str] = []

    def change(document: ProfileDocument, current: Profile) -> None:
        current.environment(name)
        previous.append(current.default_env)
        if current.default_env != name:
            document.set_default(name)

    return edit(path, change), previous[0]


def merge_local_environments(text: str, path: Path, names: list[str]) -> tuple[str, list[str]]:
    """``text`` with each of ``names`` that it lacks added as a local environment, and
    the names added (``init --force``: nothing in the profile is dropped or changed).
    ``text`` must be a valid profile (ProfileError otherwise)."""
    current = validate(text, path)
    for name in names:
        check_env_name(name)
    added = [name for name in dict.fromkeys(names) if name not in current.environments]
    if not added:
        return text, []
    document = ProfileDocument(text)
    for name in added:
        document.add_environment(name, {"backend": "local"})
    new_text = document.text
    validate(new_text, path)
    return new_text, added
