"""The AWS backend's pure parts, without a server: the botocore error table,
version numbering, the value and tag encodings, and the import cost."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.exceptions as bx
import pytest

from bsecrets.backends.aws.errors import aws_code, translate
from bsecrets.backends.aws.settings import AwsSettings
from bsecrets.backends.aws.versions import (
    add_author,
    number_versions,
    parse_authors,
    value_of,
    value_params,
    version_token,
)
from bsecrets.cli.exit_codes import ExitCode, exit_code_of
from bsecrets.cli.hints import hint_for

SETTINGS = AwsSettings(env="prod", region="eu-west-1", endpoint_url="http://127.0.0.1:1")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def client_error(code: str, message: str = "boom", status: int = 400) -> bx.ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return bx.ClientError(response, "GetSecretValue")


@pytest.mark.parametrize(
    ("code", "status", "exit_code"),
    [
        ("ResourceNotFoundException", 400, ExitCode.NOT_FOUND),
        ("NotFoundException", 400, ExitCode.NOT_FOUND),
        ("AccessDeniedException", 400, ExitCode.DENIED),
        ("DecryptionFailure", 400, ExitCode.DENIED),
        ("KMSInvalidStateException", 400, ExitCode.DENIED),
        ("ExpiredTokenException", 400, ExitCode.DENIED),
        ("ThrottlingException", 400, ExitCode.UNAVAILABLE),
        ("TooManyRequestsException", 429, ExitCode.UNAVAILABLE),
        ("InternalServiceError", 500, ExitCode.UNAVAILABLE),
        ("SomethingNew", 503, ExitCode.UNAVAILABLE),
        ("ResourceExistsException", 400, ExitCode.CONFLICT),
        ("InvalidParameterException", 400, ExitCode.USAGE),
        ("LimitExceededException", 400, ExitCode.ERROR),
    ],
)
def test_client_errors(code: str, status: int, exit_code: ExitCode) -> None:
    exc = client_error(code, status=status)
    error = translate(exc, SETTINGS, "reading secret 'db'", subject="secret 'db'")
    assert exit_code_of(error) == exit_code
    assert f"({code})" in error.message
    assert "'prod'" in error.message
    assert hint_for(error)
    try:
        raise error from exc
    except type(error) as raised:
        assert aws_code(raised) == code


def test_aws_message_never_carries_the_value() -> None:
    exc = client_error("ValidationException", "Value 'hunter2-secret' at 'secretString' failed")
    error = translate(exc, SETTINGS, "writing secret 'db'", redact=b"hunter2-secret")
    assert "hunter2-secret" not in error.message
    assert "[value]" in error.message


def test_parameter_errors_do_not_quote_parameters() -> None:
    exc = bx.ParamValidationError(report="Invalid length for parameter SecretString, value: 0")
    error = translate(exc, SETTINGS, "writing secret 'db'")
    assert exit_code_of(error) == ExitCode.USAGE
    assert "value" not in error.message and "(ParamValidationError)" in error.message


@pytest.mark.parametrize(
    ("exc", "exit_code"),
    [
        (bx.EndpointConnectionError(endpoint_url="http://x"), ExitCode.UNAVAILABLE),
        (bx.ReadTimeoutError(endpoint_url="http://x"), ExitCode.UNAVAILABLE),
        (bx.ConnectTimeoutError(endpoint_url="http://x"), ExitCode.UNAVAILABLE),
        (bx.NoCredentialsError(), ExitCode.DENIED),
        (bx.ProfileNotFound(profile="nope"), ExitCode.USAGE),
    ],
)
def test_sdk_errors(exc: Exception, exit_code: ExitCode) -> None:
    error = translate(exc, SETTINGS, "reading secret 'db'")
    assert exit_code_of(error) == exit_code
    assert f"({type(exc).__name__})" in error.message


# --- versions -----------------------------------------------------------------


def entry(vid: str, minutes: int, *stages: str) -> dict[str, Any]:
    return {
        "VersionId": vid,
        "CreatedDate": T0 + timedelta(minutes=minutes),
        "VersionStages": stages,
    }


def test_numbers_of_own_and_foreign_versions() -> None:
    versions = number_versions(
        [
            entry("uuid-b", 3, "AWSCURRENT"),
            entry(version_token(1), 0),
            entry("uuid-a", 1),
            entry(version_token(3), 2, "AWSPREVIOUS"),  # written after uuid-a was seen as 2
        ]
    )
    assert [(v.version_id, v.number) for v in versions] == [
        (version_token(1), 1),
        ("uuid-a", 2),
        (version_token(3), 3),
        ("uuid-b", 4),
    ]


def test_a_secret_only_other_clients_wrote() -> None:
    versions = number_versions([entry("uuid-2", 5, "AWSCURRENT"), entry("uuid-1", 1)])
    assert [(v.version_id, v.number, v.current) for v in versions] == [
        ("uuid-1", 1, False),
        ("uuid-2", 2, True),
    ]


def test_foreign_numbers_skip_taken_ones() -> None:
    # A foreign version between v1 and an orphaned v2 (a write that lost a race).
    versions = number_versions(
        [entry(version_token(1), 0), entry("f", 1), entry(version_token(2), 2)]
    )
    assert {v.version_id: v.number for v in versions} == {
        version_token(1): 1,
        "f": 3,
        version_token(2): 2,
    }


def test_foreign_numbers_follow_creation_order() -> None:
    # AWS removed versions 2 to 4 (retention); a foreign version after v5 is 6,
    # not the first free number, and one before every bsecrets version is 1.
    versions = number_versions(
        [entry("early", -1), entry(version_token(3), 0), entry(version_token(5), 1), entry("f", 2)]
    )
    assert [(v.version_id, v.number) for v in versions] == [
        ("early", 1),
        (version_token(3), 3),
        (version_token(5), 5),
        ("f", 6),
    ]


def test_values() -> None:
    assert value_params(b"text") == {"SecretString": "text"}
    assert value_params(b"\xff") == {"SecretBinary": b"\xff"}
    assert value_params(b"") == {"SecretBinary": b"\x00"}
    own = {"VersionId": version_token(1), "SecretBinary": b"\x00"}
    assert value_of(own) == b""
    assert value_of({**own, "VersionId": "someone-else"}) == b"\x00"


def test_authors_tag_stays_within_256_characters() -> None:
    text = ""
    for number in range(1, 40):
        text = add_author(text, number, f"user{number}@host.example.com")
    assert len(text) <= 256
    authors = parse_authors(text)
    assert authors[39] == "user39@host.example.com"
    assert 1 not in authors  # the oldest entries were dropped
    assert parse_authors(add_author("", 1, "a b=c@h")) == {1: "a_b_c@h"}


def test_importing_the_backend_and_its_commands_is_cheap() -> None:
    code = (
        "import sys, bsecrets.backends.aws, bsecrets.backends.aws.policy, "
        "bsecrets.backends.aws.settings, bsecrets.cli.commands.aws;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
