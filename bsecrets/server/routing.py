"""What the API's routes and the UI's pages share: the patterns of environment names,
secret names and If-Match, as path and header parameters (stated in the OpenAPI
document); a value's wire form; the audit log's filter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Header, Path

from bsecrets.audit.query import EventFilter, parse_when
from bsecrets.errors import UsageError

if TYPE_CHECKING:
    from bsecrets.services.manager import SecretsManager

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


def event_filter(
    manager: SecretsManager, since: str | None, until: str | None, env: str | None = None,
    name: str | None = None, action: str | None = None, actor: str | None = None,
    outcome: str | None = None, text: str | None = None,
) -> EventFilter:  # fmt: skip
    """The CLI's filter checks (cli/commands/audit.py ``_filter``), with the query
    parameters' names: a bad time or period is 400, an unknown environment 404."""
    now = manager.clock()
    start = parse_when(since, "since", now) if since is not None else None
    end = parse_when(until, "until", now) if until is not None else None
    if start is not None and end is not None and start >= end:
        raise UsageError("since is not before until", hint="swap them, or widen the period")
    if env is not None:
        env = manager.env_name(env)  # an unknown environment is an error, not an empty result
    return EventFilter(start, end, env, name, action, actor, outcome, text)
