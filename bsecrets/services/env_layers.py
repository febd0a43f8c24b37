"""Layered environments: ``exec -e shared -e dev``, ``export -e shared -e dev``, and
``render -e shared -e dev`` for its ``bsecrets:///NAME`` references (``owners``).

The environments are taken in the order given and a later one wins: a secret two
of them hold comes from the later one, and only from it (the earlier one does not
read it). Each environment is its own audited read, whose event names the secrets
taken from it. ``--only`` picks in every layer: a name must be in at least one of
them, a glob must match in at least one (exit 3 otherwise).

With one environment nothing changes: its names come from ``--only``
(envmap.select_names, which lists the environment only for a glob) or from its
listing, and it is read once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from bsecrets.audit.events import Action
from bsecrets.config.envmap import select_names
from bsecrets.errors import BsecretsError, Conflict, NextStep, SecretNotFound, UsageError
from bsecrets.named_tuples import NamedTuple

if TYPE_CHECKING:
    from bsecrets.audit.logger import Note
    from bsecrets.services.manager import SecretsManager

SHOWN_COLLISIONS = 10  # a --strict error names this many, then says how many more


class Layer(NamedTuple):
    env: str
    names: list[str]  # the secrets taken from this environment (no later one holds them)


class Layers(NamedTuple):
    layers: list[Layer]
    held_by: dict[str, list[str]]  # a name more than one environment holds -> those, in order

    @property
    def names(self) -> list[str]:
        return sorted(name for layer in self.layers for name in layer.names)

    @property
    def label(self) -> str:
        """``shared+dev``: the environments, for a message."""
        return "+".join(layer.env for layer in self.layers)


def _env_names(manager: SecretsManager, envs: Sequence[str | None]) -> list[str]:
    """The environments, resolved: an unknown one is exit 3; one given twice, exit 2."""
    names = [manager.env_name(env) for env in envs]
    for i, env in enumerate(names):
        if env in names[:i]:
            raise UsageError(
                f"environment '{env}' is layered twice",
                hint="name each environment once, in the order they apply (the later one wins)",
            )
    return names


def plan(manager: SecretsManager, envs: Sequence[str | None], only: Sequence[str]) -> Layers:
    """Which secret comes from which environment; no value is read. An unknown
    environment is exit 3 before anything is listed; one given twice, exit 2."""
    names = _env_names(manager, envs)
    only = [item.strip() for item in only if item.strip()]
    if len(names) == 1:
        env = names[0]
        chosen = select_names(only, lambda: [s.name for s in manager.list_secrets(env)], env)
        return Layers([Layer(env, chosen)], {})
    holders: dict[str, list[str]] = {}
    found: set[str] = set()
    for env in names:
        listing = [s.name for s in manager.list_secrets(env)]
        for name in sorted(_pick(only, listing, env, found)):
            holders.setdefault(name, []).append(env)
    for item in only:
        if item not in found:
            raise SecretNotFound(
                f"no secret in the environments {', '.join(names)} matches --only '{item}'",
                step=NextStep("list_secret_names"),
            )
    layers = [Layer(env, sorted(n for n, h in holders.items() if h[-1] == env)) for env in names]
    return Layers(layers, {name: h for name, h in holders.items() if len(h) > 1})


def owners(
    manager: SecretsManager, envs: Sequence[str | None], names: Sequence[str], *, strict: bool
) -> tuple[list[str], dict[str, str]]:
    """``render``'s ``bsecrets:///NAME`` references: the environments, and each name ->
    the last of them that holds it (a name none holds is absent). One environment is
    not listed; several are, one audited ``ls`` each. ``strict``: a name more than one
    holds is exit 7, before any value is read."""
    env_names = _env_names(manager, envs)
    if len(env_names) == 1:
        return env_names, {name: env_names[0] for name in names}
    holders: dict[str, list[str]] = {}
    for env in env_names:
        listed = {s.name for s in manager.list_secrets(env)}
        for name in names:
            if name in listed:
                holders.setdefault(name, []).append(env)
    if strict:
        refuse_collisions({name: held for name, held in holders.items() if len(held) > 1})
    return env_names, {name: held[-1] for name, held in holders.items()}


def _pick(only: Sequence[str], listing: list[str], env: str, found: set[str]) -> set[str]:
    """The names of ``listing`` that ``only`` picks (all without it); adds to ``found``
    each entry of ``only`` that picked something here."""
    if not only:
        return set(listing)
    live = set(listing)
    chosen: set[str] = set()
    for item in only:
        try:  # validates the name or pattern (exit 2) as --only always does
            got = [n for n in select_names([item], lambda: listing, env) if n in live]
        except SecretNotFound:  # a glob that matches nothing in this layer
            got = []
        if got:
            chosen.update(got)
            found.add(item)
    return chosen


Locate = Callable[[str, BsecretsError], None]


@contextlib.contextmanager
def reading(
    manager: SecretsManager,
    reads: Mapping[str, Sequence[str]],
    *,
    action: Action,
    locate: Locate | None = None,
) -> Iterator[tuple[dict[tuple[str, str], bytes], dict[str, Note]]]:
    """``with reading(manager, {env: names}, action=...) as (values, notes):`` one audited
    read per environment (SecretsManager.reading), values by (env, name). The caller
    may narrow each ``notes[env].names`` to what it used; every event is written when
    the block ends. ``locate(env, error)`` may add a location to a read's error."""
    values: dict[tuple[str, str], bytes] = {}
    notes: dict[str, Note] = {}
    with contextlib.ExitStack() as stack:  # entered last to first: events in layer order
        for env, names in reversed(list(reads.items())):
            try:
                got, note = stack.enter_context(manager.reading(env, list(names), action=action))
            except BsecretsError as exc:
                if locate is not None:
                    locate(env, exc)
                raise
            notes[env] = note
            values.update({(env, name): value for name, value in got.items()})
        yield values, notes


def refuse_collisions(found: Mapping[str, Sequence[str]]) -> None:
    """``--strict``: Conflict (exit 7) naming each name or variable set more than once
    and where from (environments, FILE:LINE), never a value."""
    if not found:
        return
    shown = [f"{key} ({', '.join(sources)})" for key, sources in sorted(found.items())]
    more = len(shown) - SHOWN_COLLISIONS
    raise Conflict(
        f"--strict: set more than once: {'; '.join(shown[:SHOWN_COLLISIONS])}"
        + (f"; and {more} more" if more > 0 else ""),
        hint="keep one of each, or rename one; without strict checking the later one wins",
    )
