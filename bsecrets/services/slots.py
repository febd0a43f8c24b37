"""What ``NAME#previous``, ``NAME#blue`` and ``NAME#green`` read: a version of the
secret that a rotation keeps readable (services/rotation.py, docs/rotation.md).

- ``#previous``: the version a graceful rotation replaced, while its overlap runs
  and the version it wrote is still current;
- ``#blue``, ``#green``: the versions a blue-green rotation keeps in its two slots
  (the active one is also the current value).

The records are unsealed versions and times in the local vault
(vaultfile/rotations.py), so any reader of the secret can resolve them.
"""

from __future__ import annotations

from bsecrets.errors import VersionNotFound
from bsecrets.ports import SecretBackend
from bsecrets.services.access import AccessGate
from bsecrets.timeutil import Clock, iso
from bsecrets.vaultfile.rotations import SLOTS, RotationStore

PREVIOUS = "previous"  # NAME#previous: a graceful rotation's previous value
FIELDS = (PREVIOUS, *SLOTS)


def slot_version(
    gate: AccessGate, clock: Clock, env: str, name: str, field: str, backend: SecretBackend
) -> int:
    """The version ``NAME#field`` (one of FIELDS) reads; VersionNotFound (exit 3) when
    there is none now."""
    store = RotationStore(gate.require_vault("a rotation's slots"))
    local = gate.profile.environment(env).backend == "local"
    with store.store.read():
        lookup = store.lookup(env, name, local)
        if field == PREVIOUS:
            previous = store.previous_in_grace(lookup, backend.get(name).version, iso(clock()))
            if previous is not None:
                return previous
            raise VersionNotFound(
                f"'{name}#previous' is not readable: no graceful rotation of '{name}' "
                "is within its overlap",
                hint="the previous value is readable only during a graceful rotation's overlap",
            )
        slots = store.slots(lookup)
    if slots is None or slots[1][field] < 1:
        raise VersionNotFound(
            f"'{name}#{field}' holds nothing: no blue-green rotation of '{name}' filled it",
            hint="a blue-green rotation fills one slot at a time, the active one last",
        )
    return slots[1][field]
