"""``exec --mount`` and ``exec --watch``: the child runs under bsecrets' supervision
(run/supervise.py), with its secrets in a mounted file (run/mount.py) and/or watched
for changes (services/exec_watch.py). docs/exec.md, "Mounted secrets" and "Watch".

With a mount the child's environment holds no secret: it gets ``BSECRETS_MOUNT``,
the path of the file, which holds every variable exec would have injected.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bsecrets.config.envmap import child_environment
from bsecrets.errors import BsecretsError, NextStep, UsageError
from bsecrets.named_tuples import NamedTuple
from bsecrets.run.supervise import run

if TYPE_CHECKING:
    from bsecrets.run.mount import Mount
    from bsecrets.services.exec_env import Prepared, Request
    from bsecrets.services.manager import SecretsManager

ENV_MOUNT = "BSECRETS_MOUNT"
MOUNT_FORMATS = ("dotenv", "json", "yaml")


class MountSpec(NamedTuple):
    path: str
    fmt: str
    max_reads: int | None


class WatchSpec(NamedTuple):
    interval: float  # seconds
    signum: int | None  # None: restart
    told: str  # "restart" or the signal's name, as the audit event says


def check_mount_path(path: str) -> None:
    """Refuse a path that exists (exit 7) or has no folder (exit 2) before anything is
    read; the mount checks again as it creates the file."""
    from bsecrets.run.mount import check_path

    check_path(path)


def mount_format(path: str, given: str | None) -> str:
    """``--mount-format``, else from the file name: .json, .yaml/.yml, else dotenv."""
    if given is not None:
        return given
    suffix = os.path.splitext(path)[1].lower()
    return {".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(suffix, "dotenv")


def mount_content(fmt: str, injected: dict[str, bytes]) -> bytes:
    """The variables as the file's text, keyed as the environment would have them."""
    from bsecrets.formats import codecs as formats

    items = []
    for variable in sorted(injected):
        try:
            items.append((variable, injected[variable].decode("utf-8")))
        except UnicodeDecodeError:
            raise UsageError(
                f"the value of {variable} is not UTF-8 text, which a mounted file holds",
                hint="leave it out, or write it to a file with render",
            ) from None
    try:
        return formats.render(fmt, items).encode("utf-8")
    except formats.ExportError as exc:  # dotenv cannot carry it: say what can
        raise formats.ExportError(exc.message, step=NextStep("mount_as_json_or_yaml")) from None


class _Watching:
    """The supervisor's watcher (run/supervise.py Watcher) over a services Watch."""

    def __init__(
        self,
        spec: WatchSpec,
        poll: Callable[[], Prepared | None],
        to_child: Callable[[Prepared], dict[bytes, bytes]],
        warn: Callable[[str], None],
    ) -> None:
        self.interval = spec.interval
        self.signum = spec.signum
        self._poll = poll
        self._to_child = to_child
        self._warn = warn

    def poll(self) -> tuple[dict[bytes, bytes], list[bytes]] | None:
        fresh = self._poll()
        if fresh is None:
            return None
        try:
            return self._to_child(fresh), fresh.secret_values
        except BsecretsError as exc:  # a new value the mount cannot hold
            self._warn(f"watch: {exc.message}; the command keeps the values it has")
            return None


def supervised(
    manager: SecretsManager,
    request: Request,
    prepared: Prepared,
    command: Sequence[str],
    *,
    mask: bool,
    mount: MountSpec | None,
    watch: WatchSpec | None,
    warn: Callable[[str], None],
) -> int:
    """Run the command to its end; its exit code. ``manager`` is used only to watch."""
    from bsecrets.run.mount import Mount

    if mount is None:
        return _run(manager, request, prepared, command, mask, None, watch, warn)
    content = mount_content(mount.fmt, prepared.injected)
    with Mount(mount.path, content, max_reads=mount.max_reads) as mounted:
        return _run(manager, request, prepared, command, mask, (mounted, mount.fmt), watch, warn)


def _run(
    manager: SecretsManager,
    request: Request,
    prepared: Prepared,
    command: Sequence[str],
    mask: bool,
    mount: tuple[Mount, str] | None,
    watch: WatchSpec | None,
    warn: Callable[[str], None],
) -> int:
    def child_env(fresh: Prepared) -> dict[bytes, bytes]:
        if mount is None:
            return fresh.child_env
        base, _ = child_environment(
            {}, request.environ, mapping={}, pristine=request.pristine,
            preserve=request.preserve, allow_override=request.allow_override,
        )  # fmt: skip
        base[ENV_MOUNT.encode()] = mount[0].location.encode()
        return base

    def changed(fresh: Prepared) -> dict[bytes, bytes]:
        if mount is not None:
            mount[0].update(mount_content(mount[1], fresh.injected))
        return child_env(fresh)

    watcher = None
    if watch is not None:
        from bsecrets.services.exec_watch import Watch

        poll = Watch(manager, request, prepared, told=watch.told, warn=warn).poll
        watcher = _Watching(watch, poll, changed, warn)
    return run(command, child_env(prepared), prepared.secret_values, mask=mask, watcher=watcher)
