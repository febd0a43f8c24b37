"""What the API's routes and the UI's pages share: the patterns of environment names,
secret names and If-Match, as path and header parameters (stated in the OpenAPI
document); a value's wire form."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path

ENV_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,254}$"  # models.validate_name's
TAG_KEY_PATTERN = r"^[A-Za-z0-9_.:/-]{1,128}$"  # models.validate_tags's
IF_MATCH_PATTERN = r'^"?[0-9]{1,18}"?$'
# module level: FastAPI resolves the routes' annotations (strings) in this namespace
Env = Annotated[str, Path(pattern=ENV_PATTERN, max_length=63)]
Name = Annotated[str, Path(pattern=NAME_PATTERN, max_length=255)]
IfMatch = Annotated[str | None, Header(pattern=IF_MATCH_PATTERN)]


def value_json(value: bytes) -> dict[str, str]:
    """A value as the API and the UI show it: text as is, other bytes in base64."""
    import base64

    try:
        return {"value": value.decode("utf-8"), "encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(value).decode(), "encoding": "base64"}
