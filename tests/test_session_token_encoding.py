"""The session token's base64 (vaultfile/session.py) is binascii's, not base64's module
(whose import costs every command), and reading text of the URL-safe alphabet only does
without binascii too: the same text out, the same bytes or ValueError in."""

from __future__ import annotations

import base64
import random

import pytest

from bsecrets.vaultfile import session

RANDOM = random.Random(20261201)
BLOBS = [RANDOM.randbytes(n) for n in (*range(0, 70), 255, 256, 1000) for _ in range(3)]


@pytest.mark.parametrize("data", BLOBS, ids=lambda data: f"{len(data)}B")
def test_encoding_is_urlsafe_base64_without_padding(data: bytes) -> None:
    text = session._b64(data)
    assert text == base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert session._unb64(text) == data


def _theirs(text: str) -> bytes | type[Exception]:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as error:
        return type(error)


def _ours(text: str) -> bytes | type[Exception]:
    try:
        return session._unb64(text)
    except ValueError as error:
        return type(error)


ALPHABET = "ABCxyz019-_+/=.!é\n "
TEXTS = ["", "=", "==", "A", "AB", "ABC", "ABCD", "A=BC", "é", "-_-_", "+/+/", "AB\n", "ab cd"]
TEXTS += ["".join(RANDOM.choices(ALPHABET, k=RANDOM.randrange(1, 48))) for _ in range(400)]
# the URL-safe alphabet only (read without binascii), of every length: spare bits that
# are not zero (no encoder writes them), and lengths binascii refuses (4n + 1)
URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
TEXTS += ["".join(RANDOM.choices(URLSAFE, k=n)) for n in range(0, 70) for _ in range(4)]


@pytest.mark.parametrize("text", TEXTS)
def test_decoding_gives_base64s_bytes_or_error(text: str) -> None:
    assert _ours(text) == _theirs(text)
