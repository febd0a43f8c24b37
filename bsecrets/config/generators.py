"""The generators of the profile's ``provision:`` mapping (pure: no I/O; the
workflow that creates the missing secrets is bsecrets.services.provision).

Generators (every random one from ``secrets``, never ``random``):

| profile | value |
|---|---|
| ``password:N`` | N characters from letters, digits and ``-_.~@%+=`` |
| ``hex:N`` | N random bytes, hex (2N characters; as ``openssl rand -hex N``) |
| ``base64:N`` | N random bytes, standard base64 with padding |
| ``uuid`` | a random UUID (version 4) |
| ``{value: TEXT}`` | TEXT itself |
| ``{from_env: VAR}`` | the variable VAR of the environment running ``provision`` |
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from bsecrets.errors import EmptyValue, NextStep, UsageError

GENERATOR_HINT = (
    "generators: password:N, hex:N, base64:N (N from 1 to 4096), uuid, "
    "{value: TEXT}, {from_env: VAR}"
)
MAX_LENGTH = 4096
PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_.~@%+="
_SIZED = re.compile(r"(password|hex|base64):([0-9]{1,5})")


def parse_generator(text: str) -> tuple[str, str | int | None]:
    """``"hex:32"`` -> ``("hex", 32)``; ValueError with the problem otherwise."""
    text = text.strip()
    if text == "uuid":
        return ("uuid", None)
    match = _SIZED.fullmatch(text)
    if not match:
        raise ValueError(f"unknown generator {text!r}")
    size = int(match.group(2))
    if not 1 <= size <= MAX_LENGTH:
        raise ValueError(f"{match.group(1)}: the length must be from 1 to {MAX_LENGTH}")
    return (match.group(1), size)


def generate(
    name: str,
    generator: tuple[str, str | int | None],
    environ: Mapping[str, str],
    *,
    allow_empty: bool = False,
) -> bytes:
    """The value for ``name``; an empty one (``{value: ""}``, a ``from_env`` variable
    set to nothing) is EmptyValue unless ``allow_empty``."""
    import secrets

    kind, arg = generator
    if kind == "password":
        assert isinstance(arg, int)
        return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(arg)).encode()
    if kind == "hex":
        assert isinstance(arg, int)
        return secrets.token_hex(arg).encode()
    if kind == "base64":
        import base64

        assert isinstance(arg, int)
        return base64.b64encode(secrets.token_bytes(arg))
    if kind == "uuid":
        import uuid

        return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4)).encode()
    if kind == "value":
        if not arg and not allow_empty:
            raise EmptyValue(
                f"provision of '{name}': its value in the profile is empty",
                hint="nothing was created",
                step=NextStep("give_value_or_allow_empty", name=name),
            )
        return str(arg).encode()
    if kind == "from_env":
        var = str(arg)
        if var not in environ:
            raise UsageError(
                f"provision of '{name}' reads the variable {var}, which is not set",
                hint=f"set {var}, or change the generator of '{name}' in the profile",
            )
        if not environ[var] and not allow_empty:
            raise EmptyValue(
                f"provision of '{name}' reads the variable {var}, which is empty",
                hint="nothing was created",
                step=NextStep("set_variable_or_allow_empty", variable=var),
            )
        return environ[var].encode()
    raise UsageError(f"provision of '{name}': unknown generator '{kind}'", hint=GENERATOR_HINT)
