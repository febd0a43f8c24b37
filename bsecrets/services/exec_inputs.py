"""What ``exec`` injects: the ``-e`` environments' secrets (layered, services/env_layers.py),
then the ``--env-file`` lines on top (services/env_file.py). docs/exec.md.

- The environments' secrets come first, in the order of ``-e`` (a later one wins);
  with ``--env-file`` they are injected only when ``-e`` is given on the command line.
- Each file's lines go over them, in the order of ``--env-file`` (a later one wins):
  a line wins over a secret that maps to the same variable.
- ``--strict`` refuses (exit 7) a secret two environments hold and a variable that
  more than one source sets, before any value is read.
- Every environment is read once: the secrets its layer gives and the plain
  references to it, in one audited ``exec`` read whose event names the secrets the
  child gets. A reference with a version or a field is its own audited ``get``.
- Only secrets are masked; a file's plain settings are not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from bsecrets.audit.events import Action
from bsecrets.config.envmap import map_names
from bsecrets.errors import UsageError
from bsecrets.named_tuples import NamedTuple
from bsecrets.services import env_file, env_layers
from bsecrets.services.env_file import Line
from bsecrets.services.env_layers import Layers

if TYPE_CHECKING:
    from bsecrets.audit.logger import Note
    from bsecrets.services.manager import SecretsManager


class Inputs(NamedTuple):
    layers: Layers | None  # None: --env-file alone, no environment's secrets
    mapping: dict[str, str]  # variable -> secret name, the layers' (envmap.map_names)
    lines: dict[str, Line]  # variable -> the file line that sets it (the last one)

    @property
    def env(self) -> str:
        """The one environment (``--with-previous`` takes one)."""
        if self.layers is None or len(self.layers.layers) != 1:
            raise UsageError(
                "--with-previous works with one environment",
                hint="give one environment, or leave the option out",
            )
        return self.layers.layers[0].env


def plan(
    manager: SecretsManager,
    envs: Sequence[str | None],
    lines: Sequence[Line],
    *,
    only: Sequence[str],
    prefix: str,
    strict: bool,
) -> Inputs:
    """Which variable comes from where; no value is read. Unknown environments (of a
    reference, at its FILE:LINE, or of ``-e``) are exit 3 first."""
    env_file.check_environments(manager, lines)
    layers = env_layers.plan(manager, envs, only) if envs else None
    mapping = map_names(layers.names, prefix) if layers is not None else {}
    if strict:
        env_layers.refuse_collisions(_collisions(layers, mapping, lines))
    return Inputs(layers, mapping, env_file.winners(lines))


def _collisions(
    layers: Layers | None, mapping: Mapping[str, str], lines: Sequence[Line]
) -> dict[str, list[str]]:
    """A secret name two environments hold, and a variable set by a secret and a line
    or by several lines -> where each comes from."""
    found = {name: list(envs) for name, envs in (layers.held_by if layers else {}).items()}
    source = {n: layer.env for layer in (layers.layers if layers else []) for n in layer.names}
    for variable, wheres in env_file.setters(lines).items():
        sources = ([source[mapping[variable]]] if variable in mapping else []) + wheres
        if len(sources) > 1:
            found[variable] = found.get(variable, []) + [
                s for s in sources if s not in found.get(variable, [])
            ]
    return found


class Reading:
    """What ``reading`` yields: the layers' secrets (``secrets`` by name, ``mapping``
    variable -> name, as exec always had them), ``on_top`` to add the file's lines,
    ``used`` to narrow each event to what the child got."""

    def __init__(
        self,
        inputs: Inputs,
        values: dict[tuple[str, str], bytes],
        notes: dict[str, Note],
        each: dict[str, bytes],
    ) -> None:
        self.inputs = inputs
        self.notes = notes
        layers = inputs.layers.layers if inputs.layers is not None else []
        self.secrets = {n: values[(layer.env, n)] for layer in layers for n in layer.names}
        self.mapping = dict(inputs.mapping)
        self._owner = {n: layer.env for layer in layers for n in layer.names}
        self._values = values
        self._each = each
        self._plain: set[str] = set()

    def on_top(
        self, secrets: dict[str, bytes], mapping: dict[str, str]
    ) -> tuple[dict[str, bytes], dict[str, str]]:
        """``secrets`` and ``mapping`` with each file line over them (keyed FILE:LINE)."""
        secrets, mapping = dict(secrets), dict(mapping)
        for variable, line in self.inputs.lines.items():
            if line.text is not None:
                value = line.text.encode("utf-8")
                self._plain.add(line.where)
            else:
                value = (
                    self._values[(line.env, line.name)] if line.batched else self._each[line.where]
                )
                if b"\0" in value:
                    raise env_file.located(
                        UsageError(
                            f"secret '{line.name}' holds a NUL byte and cannot be an "
                            "environment variable",
                            hint="write it to a file with render instead",
                        ),
                        line.where,
                    )
            secrets[line.where] = value
            mapping[variable] = line.where
        return secrets, mapping

    def used(self, keys: Iterable[str]) -> None:
        """Each environment's event names the secrets the child got from its read."""
        lines = {line.where: line for line in self.inputs.lines.values()}
        names: dict[str, list[str]] = {env: [] for env in self.notes}
        for key in keys:
            line = lines.get(key)
            if line is not None:
                env, name = (line.env, line.name) if line.batched else ("", "")
            else:  # a layer's secret, or its NAME#previous (--with-previous)
                env, name = self._owner.get(key.partition("#")[0], ""), key
            if env in names and name not in names[env]:
                names[env].append(name)
        for env, note in self.notes.items():
            note.names = names[env]

    def source(self, key: str) -> tuple[str, str] | None:
        """(environment, secret) a key of ``on_top``'s mapping comes from; None for a
        file's plain setting."""
        for line in self.inputs.lines.values():
            if line.where == key:
                return None if line.text is not None else (line.env, line.name)
        env = self._owner.get(key.partition("#")[0])
        return (env, key) if env is not None else None

    def secret_values(self, secrets: Mapping[str, bytes]) -> list[bytes]:
        """What masking hides: every secret read, not a file's plain settings."""
        return [value for key, value in secrets.items() if key not in self._plain]


@contextlib.contextmanager
def reading(manager: SecretsManager, inputs: Inputs) -> Iterator[Reading]:
    """Every value ``inputs`` needs: the references with a version or a field first
    (a ``get`` each), then one audited ``exec`` read per environment; the events are
    written when the block ends, before the child starts."""
    lines = list(inputs.lines.values())
    each = env_file.resolve_each(manager, lines)
    layer_reads = {
        layer.env: list(layer.names)
        for layer in (inputs.layers.layers if inputs.layers is not None else [])
    }
    reads = {env: list(names) for env, names in layer_reads.items()}
    for env, names in env_file.batch_reads(lines).items():
        reads.setdefault(env, []).extend(n for n in names if n not in reads[env])
    locate = env_file.locator(lines, layer_reads)
    with env_layers.reading(manager, reads, action=Action.EXEC, locate=locate) as (values, notes):
        yield Reading(inputs, values, notes, each)
