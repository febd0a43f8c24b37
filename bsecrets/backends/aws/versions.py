"""bsecrets version numbers on AWS, values, and the tags bsecrets keeps.

Version numbers. AWS identifies versions by a VersionId, which is the
ClientRequestToken the writer chose. bsecrets writes version N with the token
``bsecrets-version-<N, 15 digits>`` (32 characters, AWS's minimum), so:

* the number of every version bsecrets wrote is in its id: stable for as long
  as AWS keeps the version, and ``get --version N`` is a direct read;
* two bsecrets writers that both try to create version N send the same token
  with different values, and AWS refuses the second (ResourceExistsException):
  the loser gets a conflict instead of a silent overwrite.

Versions written by other clients (random UUID tokens) are numbered after the
nearest strictly earlier bsecrets version, in creation order, skipping numbers
already taken. Those numbers are stable while AWS keeps that earlier version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TOKEN_PREFIX = "bsecrets-version-"
_TOKEN_RE = re.compile(r"bsecrets-version-(\d{15})")
CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"
# The label of a version written but not yet made current (see AWSAdapter.put).
# Not AWSPENDING: that one belongs to rotation, and moto lets a token whose
# version is AWSPENDING be reused with another value (moto gap 4).
PENDING = "bsecrets-pending"
# A rotation's new value before it is current (AWS's rotation protocol; services/rotation.py).
AWSPENDING = "AWSPENDING"

ENV_TAG = "bsecrets:env"
AUTHORS_TAG = "bsecrets:authors"
RESERVED_TAG_PREFIXES = ("bsecrets:", "aws:")
UNKNOWN_AUTHOR = "unknown"
_TAG_VALUE_MAX = 256
_TAG_VALUE_RE = re.compile(r"[\w\s.:/=+@-]*")  # what AWS allows in a tag value
_AUTHOR_UNSAFE = re.compile(r"[^\w.:/+@-]")  # also no '=' or space: they separate entries

# AWS refuses an empty SecretString or SecretBinary. bsecrets stores text as
# SecretString and only non-UTF-8 bytes as SecretBinary, so a SecretBinary
# that is valid UTF-8 never holds a value: a single NUL byte stands for b"".
EMPTY_MARKER = b"\x00"


def version_token(number: int) -> str:
    return f"{TOKEN_PREFIX}{number:015d}"


def token_number(version_id: str) -> int | None:
    """N if ``version_id`` is a token bsecrets wrote, else None."""
    match = _TOKEN_RE.fullmatch(version_id)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class AwsVersion:
    version_id: str
    number: int
    created_at: datetime
    stages: tuple[str, ...]

    @property
    def current(self) -> bool:
        return CURRENT in self.stages

    @property
    def in_flight(self) -> bool:
        """Written by a put that has not made it current (yet, or ever)."""
        return self.stages == (PENDING,)


def utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), UTC)


def number_versions(entries: Iterable[Mapping[str, Any]]) -> list[AwsVersion]:
    """Number the versions ListSecretVersionIds returned; sorted by number."""
    own: list[AwsVersion] = []
    foreign: list[tuple[datetime, str, tuple[str, ...]]] = []
    for entry in entries:
        vid = str(entry["VersionId"])
        created = utc(entry.get("CreatedDate", 0))
        stages = tuple(entry.get("VersionStages") or ())
        number = token_number(vid)
        if number is None:
            foreign.append((created, vid, stages))
        else:
            own.append(AwsVersion(vid, number, created, stages))
    used = {v.number for v in own}
    out = list(own)
    last = 0
    for created, vid, stages in sorted(foreign):
        # Strictly earlier: a version of the same instant may have come after it
        # (moto's dates have 1 s resolution); numbers already taken are skipped.
        anchor = max([v.number for v in own if v.created_at < created] + [last])
        number = anchor + 1
        while number in used:
            number += 1
        used.add(number)
        last = number
        out.append(AwsVersion(vid, number, created, stages))
    return sorted(out, key=lambda v: v.number)


def current_of(versions: Iterable[AwsVersion]) -> AwsVersion | None:
    return next((v for v in versions if v.current), None)


# --- values -------------------------------------------------------------------


def value_params(value: bytes) -> dict[str, Any]:
    """The SecretString / SecretBinary parameter that stores ``value``."""
    if not value:
        return {"SecretBinary": EMPTY_MARKER}
    try:
        return {"SecretString": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"SecretBinary": value}


def value_of(response: Mapping[str, Any]) -> bytes:
    """The value a GetSecretValue response holds (bsecrets' or another client's)."""
    text = response.get("SecretString")
    if text is not None:
        return str(text).encode("utf-8")
    data = bytes(response.get("SecretBinary") or b"")
    if data == EMPTY_MARKER and token_number(str(response.get("VersionId", ""))) is not None:
        return b""
    return data


# --- tags -----------------------------------------------------------------------


def tag_dict(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in tags or ()}


def user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if not k.startswith(RESERVED_TAG_PREFIXES)}


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def bad_user_tag(key: str, value: str) -> str | None:
    """Why AWS (or bsecrets) would refuse this user tag; None if it is fine."""
    if key.startswith(RESERVED_TAG_PREFIXES):
        return f"tag key {key!r}: the prefixes 'bsecrets:' and 'aws:' are reserved"
    if not _TAG_VALUE_RE.fullmatch(value):
        return f"tag {key!r}: AWS allows only letters, digits, spaces and _ . : / = + - @"
    return None


def parse_authors(text: str) -> dict[int, str]:
    """``"3=alice@host 2=bob@ci"`` -> {3: "alice@host", 2: "bob@ci"}."""
    out: dict[int, str] = {}
    for item in text.split():
        number, sep, actor = item.partition("=")
        if sep and number.isdigit():
            out[int(number)] = actor
    return out


def add_author(text: str, number: int, actor: str) -> str:
    """The authors tag with version ``number`` by ``actor`` first; older entries
    are dropped to stay within AWS's 256 characters for a tag value."""
    entries = [f"{number}={_AUTHOR_UNSAFE.sub('_', actor)[:100]}"]
    entries += [f"{n}={a}" for n, a in parse_authors(text).items() if n != number]
    out = ""
    for entry in entries:
        candidate = f"{out} {entry}" if out else entry
        if len(candidate) > _TAG_VALUE_MAX:
            break
        out = candidate
    return out
