"""What ``exec`` gives its child, worked out in one call: ``prepare``.

The same function runs at start and at each ``--watch`` poll (services/exec_watch.py),
so a poll sees exactly what a fresh ``exec`` would inject: the ``-e`` layers, the
``--env-file`` lines (services/exec_inputs.py), ``--with-previous``, and the rules of
config/envmap.py (protected and withheld variables). docs/exec.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from bsecrets.config.envmap import child_environment
from bsecrets.named_tuples import NamedTuple
from bsecrets.services import exec_inputs

if TYPE_CHECKING:
    from bsecrets.services.env_file import Line
    from bsecrets.services.manager import SecretsManager


class Request(NamedTuple):
    """What the command line asked for (exec's options, settled)."""

    envs: Sequence[str | None]  # the -e layers, in order; empty: --env-file alone
    lines: Sequence[Line]  # the --env-file settings, in order
    environ: Mapping[str, str]  # what bsecrets inherited
    only: Sequence[str] = ()
    prefix: str = ""
    strict: bool = False
    with_previous: bool = False
    pristine: bool = False
    preserve: Sequence[str] = ()
    allow_override: Sequence[str] = ()


class Prepared(NamedTuple):
    """The child's environment, and what else the caller needs to know of it."""

    child_env: dict[bytes, bytes]
    injected: dict[str, bytes]  # variable -> value: what bsecrets adds (a mount's content)
    secret_values: list[bytes]  # what masking hides (not a file's plain settings)
    sources: dict[str, tuple[str, str]]  # variable -> (env, secret) it comes from


def prepare(manager: SecretsManager, request: Request) -> Prepared:
    """Read (audited: one ``exec`` event per environment, naming what the child gets)
    and map every value; nothing is handed on before the events are written. The
    listing that plans the read and the read itself write their events together, in
    one transaction, when this returns (AuditLogger.together). Only with environments
    to read: they open the vault anyway, and an --env-file of plain settings must not."""
    if not request.envs:
        return _prepare(manager, request)
    for env in request.envs:  # an unknown name is exit 3 before the vault is opened
        manager.env_name(env)
    with manager.audit.together():
        return _prepare(manager, request)


def _prepare(manager: SecretsManager, request: Request) -> Prepared:
    inputs = exec_inputs.plan(
        manager, request.envs, request.lines,
        only=request.only, prefix=request.prefix, strict=request.strict,
    )  # fmt: skip
    with exec_inputs.reading(manager, inputs) as read:
        secrets, mapping = read.secrets, read.mapping
        if request.with_previous:  # graceful rotations: docs/rotation.md
            # a seam: exec loads the rotation service only when asked (start-up, #20)
            from bsecrets.services.rotation import with_previous as add_previous

            secrets, mapping = add_previous(manager, inputs.env, secrets, mapping)
        secrets, mapping = read.on_top(secrets, mapping)
        child_env, injected = child_environment(
            secrets, request.environ, mapping=mapping, pristine=request.pristine,
            preserve=request.preserve, allow_override=request.allow_override,
        )  # fmt: skip
        read.used(mapping[variable] for variable in injected)  # what each event names
    sources = {}
    for variable in injected:
        source = read.source(mapping[variable])
        if source is not None:
            sources[variable] = source
    return Prepared(
        child_env,
        {variable: child_env[variable.encode()] for variable in injected},
        read.secret_values(secrets),
        sources,
    )
