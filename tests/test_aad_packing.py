"""The associated data's and the digests' numbers (crypto/keys.py) are written without
struct, whose import costs every command: the same bytes as struct's ">I" and ">q" for
every value either takes, and encode_aad the same as when it used struct. The vaults
written before the change are read by every other test that opens one."""

from __future__ import annotations

import random
import struct

import pytest

from bsecrets.crypto.keys import aad_parts, encode_aad, pack_int, pack_length, pack_lengths

RANDOM = random.Random(20261201)
LENGTHS = [0, 1, 8, 255, 256, 65535, 65536, 2**31, 2**32 - 1]
LENGTHS += [RANDOM.randrange(2**32) for _ in range(200)]
INTS = [0, 1, -1, 2**31, -(2**31), 2**63 - 1, -(2**63), True, False]
INTS += [RANDOM.randrange(-(2**63), 2**63) for _ in range(200)]


def test_lengths_are_structs_unsigned_four_bytes() -> None:
    for number in LENGTHS:
        assert pack_length(number) == struct.pack(">I", number)
    blobs = [b"x" * (n % 300) for n in LENGTHS]
    assert list(pack_lengths(blobs)) == [struct.pack(">I", len(b)) for b in blobs]


def test_ints_are_structs_signed_eight_bytes() -> None:
    for number in INTS:
        assert pack_int(number) == struct.pack(">q", number)
    assert list(map(pack_int, INTS)) == [struct.pack(">q", n) for n in INTS]


@pytest.mark.parametrize("number", [-1, 2**32], ids=["negative", "too long"])
def test_a_length_out_of_range_is_refused_as_struct_refuses_it(number: int) -> None:
    with pytest.raises(struct.error):
        struct.pack(">I", number)
    with pytest.raises(OverflowError):
        pack_length(number)


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1], ids=["too big", "too small"])
def test_an_int_out_of_range_is_refused_as_struct_refuses_it(number: int) -> None:
    with pytest.raises(struct.error):
        struct.pack(">q", number)
    with pytest.raises(OverflowError):
        pack_int(number)


def _with_struct(*parts: str | bytes | int) -> bytes:
    """encode_aad as it was written with struct."""
    chunks = [b"bsecrets/v1"]
    for part in parts:
        if isinstance(part, bytes):
            chunks += [b"b", struct.pack(">I", len(part)), part]
        elif isinstance(part, str):
            raw = part.encode("utf-8")
            chunks += [b"s", struct.pack(">I", len(raw)), raw]
        else:
            chunks += [b"i", struct.pack(">I", 8), struct.pack(">q", part)]
    return b"".join(chunks)


def _part(rng: random.Random) -> str | bytes | int:
    kind = rng.randrange(3)
    if kind == 0:
        return rng.randbytes(rng.randrange(70))
    if kind == 1:
        return "".join(rng.choice("aé🔑/\x00") for _ in range(rng.randrange(20)))
    return rng.choice(INTS)


def test_encode_aad_is_what_it_was_with_struct() -> None:
    rng = random.Random(7)
    for _ in range(500):
        parts = [_part(rng) for _ in range(rng.randrange(8))]
        assert encode_aad(*parts) == _with_struct(*parts)
        assert aad_parts(*parts) == _with_struct(*parts)[len(b"bsecrets/v1") :]
