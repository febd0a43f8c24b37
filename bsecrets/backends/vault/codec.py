"""How bsecrets' secrets look in KV v2, so that other Vault clients read them naturally.

* Data: ``{"value": "<text>"}``, or ``{"value_b64": "<base64>"}`` for bytes
  that are not UTF-8. Data written by another client with other keys reads as
  its JSON object; ``NAME#field`` selects one field.
* ``custom_metadata`` (Vault: at most 64 keys, keys up to 128 bytes, values up
  to 512 bytes): every key not starting with ``bsecrets:`` is a tag; bsecrets
  keeps ``bsecrets:description`` and ``bsecrets:by:<version>`` (who wrote a
  version, as KV v2 does not record it) for the versions Vault still keeps.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from bsecrets.errors import NextStep, SecretNotFound, UsageError

RESERVED = "bsecrets:"
DESCRIPTION_KEY = "bsecrets:description"
AUTHOR_PREFIX = "bsecrets:by:"
MAX_KEYS = 64
MAX_KEY_BYTES = 128
MAX_VALUE_BYTES = 512
UNKNOWN_AUTHOR = "unknown"


def encode_value(value: bytes) -> dict[str, str]:
    try:
        return {"value": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"value_b64": base64.b64encode(value).decode("ascii")}


def decode_value(data: Any) -> bytes:
    """The stored bytes; a foreign object (other keys) as its JSON text."""
    if isinstance(data, dict) and len(data) == 1:
        if isinstance(data.get("value"), str):
            return bytes(data["value"].encode("utf-8"))
        if isinstance(data.get("value_b64"), str):
            try:
                return base64.b64decode(data["value_b64"], validate=True)
            except (binascii.Error, ValueError):
                pass  # not ours after all: show the object
    return _json_text(data)


def select_field(data: Any, field: str, name: str, env: str) -> bytes:
    """One field of the object at ``name``: strings as they are, anything else as JSON."""
    if not isinstance(data, dict) or field not in data:
        fields = ", ".join(sorted(map(str, data))) if isinstance(data, dict) else ""
        raise SecretNotFound(
            f"secret '{name}' in environment '{env}' has no field '{field}'",
            hint=f"its fields: {fields}" if fields else "read it without '#field'",
        )
    item = data[field]
    return item.encode("utf-8") if isinstance(item, str) else _json_text(item)


def _json_text(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")


def split_field(name: str) -> tuple[str, str | None]:
    """``NAME#field`` -> (NAME, field); a name without '#' -> (name, None)."""
    base, sep, field = name.partition("#")
    if not sep:
        return name, None
    if not field:
        raise UsageError(f"empty field name in {name!r}", hint="write NAME#field")
    return base, field


# --- custom_metadata ---------------------------------------------------------


def tags_of(custom: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (custom or {}).items() if not k.startswith(RESERVED)}


def description_of(custom: dict[str, str] | None) -> str:
    return (custom or {}).get(DESCRIPTION_KEY, "")


def author_of(custom: dict[str, str] | None, version: int) -> str:
    return (custom or {}).get(f"{AUTHOR_PREFIX}{version}", UNKNOWN_AUTHOR)


def check_metadata(tags: dict[str, str] | None, description: str | None) -> None:
    """Refuse, before anything is written, what Vault's custom_metadata cannot hold."""
    for key, value in (tags or {}).items():
        if key.startswith(RESERVED):
            raise UsageError(
                f"tag {key!r}: keys starting with '{RESERVED}' are reserved on Vault",
                hint="pick another tag key",
            )
        if len(key.encode()) > MAX_KEY_BYTES or len(value.encode()) > MAX_VALUE_BYTES:
            raise UsageError(
                f"tag {key!r} is too long for Vault's custom_metadata "
                f"(keys up to {MAX_KEY_BYTES} bytes, values up to {MAX_VALUE_BYTES} bytes)"
            )
    if description is not None and len(description.encode()) > MAX_VALUE_BYTES:
        raise UsageError(
            f"the description is {len(description.encode())} bytes; "
            f"Vault keeps at most {MAX_VALUE_BYTES} bytes in custom_metadata",
            hint="shorten the description",
        )


def metadata_patch(
    current: dict[str, str] | None,
    *,
    version: int,
    actor: str,
    kept_versions: set[int],
    tags: dict[str, str] | None,
    description: str | None,
) -> dict[str, str | None]:
    """A JSON merge patch of custom_metadata after writing ``version``.

    Records the author, replaces the tags and the description when given
    (None keeps them), and drops authors of versions Vault no longer keeps,
    then the oldest authors, so the map stays within 64 keys.
    """
    current = dict(current or {})
    patch: dict[str, str | None] = {f"{AUTHOR_PREFIX}{version}": _fit(actor)}
    if tags is not None:
        for key in tags_of(current):
            if key not in tags:
                patch[key] = None
        patch.update(tags)
    if description is not None:
        patch[DESCRIPTION_KEY] = description or None
    authors = sorted(
        int(k[len(AUTHOR_PREFIX) :])
        for k in current
        if k.startswith(AUTHOR_PREFIX) and k[len(AUTHOR_PREFIX) :].isdigit()
    )
    for old in authors:
        if old not in kept_versions and old != version:
            patch[f"{AUTHOR_PREFIX}{old}"] = None
    merged = {**current, **patch}
    for old in authors:  # oldest first, until the map fits
        if sum(v is not None for v in merged.values()) <= MAX_KEYS:
            break
        if old != version:
            patch[f"{AUTHOR_PREFIX}{old}"] = merged[f"{AUTHOR_PREFIX}{old}"] = None
    if sum(v is not None for v in merged.values()) > MAX_KEYS:
        raise UsageError(
            f"too many tags: Vault keeps at most {MAX_KEYS} custom_metadata keys per secret",
            hint="remove some tags",
        )
    return patch


def _fit(text: str) -> str:
    data = text.encode("utf-8")[:MAX_VALUE_BYTES]
    return data.decode("utf-8", errors="ignore")


# --- versions in KV metadata ---------------------------------------------------


def latest(meta: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(current version, its entry in ``versions``) of a secret's metadata."""
    current = int(meta["current_version"])
    return current, (meta.get("versions") or {}).get(str(current)) or {}


def is_deleted(info: dict[str, Any], now: datetime) -> bool:
    """Destroyed, or deleted (a deletion_time in the future is only scheduled)."""
    if info.get("destroyed"):
        return True
    when = parse_time(info.get("deletion_time"))
    return when is not None and when <= now


def deleted_error(name: str, env: str, info: dict[str, Any]) -> SecretNotFound:
    if info.get("destroyed"):
        return SecretNotFound(
            f"the latest version of secret '{name}' in environment '{env}' was destroyed",
            step=NextStep("write_new_version", name=name),
        )
    return SecretNotFound(
        f"secret '{name}' was deleted in environment '{env}'",
        step=NextStep("restore_secret", name=name),
    )


# --- times -------------------------------------------------------------------


def parse_time(text: str | None) -> datetime | None:
    """Vault's RFC 3339 times (nanoseconds, 'Z'); None for '' or None."""
    if not text:
        return None
    head, dot, frac = text.partition(".")
    zone = ""
    if dot:
        digits = frac.rstrip("Z").split("+")[0].split("-")[0]
        zone = frac[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
