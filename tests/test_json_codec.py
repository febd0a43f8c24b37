"""bsecrets.json_codec gives what json gives: the same text for the same value (the
audit events' and records' MACs cover it), the same value for the same text, and the
same error, message and position for a broken text or a value JSON cannot hold.

Seeded corpora (fixed counts): values of every JSON type, nested, with text that needs
escaping (control characters, quotes, lone surrogates, characters beyond the BMP),
numbers at their edges (-0.0, NaN, the infinities, integers past 64 bits); their texts
with whitespace around; broken texts made from them (cut, a character inserted or
removed); the bytes json reads as UTF-8, -16 or -32; and json's own functions where
``_json`` is missing."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from typing import Any

import pytest

from bsecrets import json_codec

SEED = 20261201
CHARS = (
    "aZ09 _-./", '"\\', "\b\f\n\r\t\x00\x1f\x7f", "\u00e9\u2028\u2029\ufeff", "\U0001f511",
    "\ud800\udfff",  # lone surrogates: json escapes them, and reads \ud800 back
)  # fmt: skip
NUMBERS = (
    0, -1, 1, 2**63, -(2**63) - 1, 2**70, 0.0, -0.0, 1.5, 1e-300, 1e300, 5e-324,
    float("nan"), float("inf"), float("-inf"), True, False,
)  # fmt: skip


def outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """What a call gives: its value's repr, or its error's type, text and position."""
    try:
        return ("ok", repr(call(*args, **kwargs)))
    except Exception as exc:
        return (type(exc).__name__, str(exc), getattr(exc, "pos", None))


def same(ours: Callable[..., Any], theirs: Callable[..., Any], *args: Any, **kw: Any) -> bool:
    return outcome(ours, *args, **kw) == outcome(theirs, *args, **kw)


def text(rng: random.Random) -> str:
    return "".join(rng.choice(rng.choice(CHARS)) for _ in range(rng.randint(0, 12)))


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randint(0, 6 if depth < 4 else 3)
    if kind == 0:
        return text(rng)
    if kind == 1:
        return rng.choice(NUMBERS)
    if kind == 2:
        return rng.choice([None, rng.random() * 10 ** rng.randint(-20, 20), rng.randint(-9, 9)])
    if kind == 3:
        return rng.choice(["", "get", 7])
    if kind in (4, 5):
        return {text(rng): value(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    items = [value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return tuple(items) if rng.random() < 0.2 else items


VALUES = [value(random.Random(SEED + n)) for n in range(400)]
IDS = ["odd keys", "mixed keys", "tuple key", "set", "bytes", "object", "deep object", "complex"]
ODD_KEYS = [
    {2: "a", 2.5: "b", True: "c", None: "d", "e": "f"},  # json writes the keys as text
    {1: "a", "b": 2},  # sort_keys: int and str do not compare (TypeError)
    {(1, 2): "x"},  # a key JSON cannot hold (TypeError)
]


def json_canonical(v: Any) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def encodings(
    v: Any,
    dumps: Callable[..., Any] = json_codec.dumps,
    canonical: Callable[..., Any] = json_codec.canonical,
) -> list[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    return [
        (outcome(dumps, v), outcome(json.dumps, v)),
        (outcome(dumps, v, sort_keys=True), outcome(json.dumps, v, sort_keys=True)),
        (outcome(canonical, v), outcome(json_canonical, v)),
    ]


@pytest.mark.parametrize("chunk", range(4))
def test_values_are_written_as_json_writes_them(chunk: int) -> None:
    for v in VALUES[chunk::4]:
        for ours, theirs in encodings(v):
            assert ours == theirs, v


@pytest.mark.parametrize(
    "v",
    [*ODD_KEYS, {1, 2}, b"bytes", object(), [1, {"deep": [object()]}], {"a": 1j}],
    ids=IDS,
)
def test_what_json_cannot_hold_fails_as_in_json(v: Any) -> None:
    for ours, theirs in encodings(v):
        assert ours == theirs


def test_a_circular_reference_fails_as_in_json_and_the_next_call_is_clean() -> None:
    looped: list[Any] = [1]
    looped.append(looped)
    shared: dict[str, Any] = {}
    shared["self"] = shared
    for v in (looped, shared):
        for ours, theirs in encodings(v):
            assert ours == theirs and ours[0] == "ValueError"
    # an error half-way through a container leaves no mark behind: the same list,
    # fixed, is written (a shared mark table would call it circular)
    held: list[Any] = [object()]
    outer = [held, held]
    assert outcome(json_codec.canonical, outer)[0] == "TypeError"
    held[0] = "fine"
    assert json_codec.canonical(outer) == '[["fine"],["fine"]]'


@pytest.mark.parametrize("chunk", range(4))
def test_texts_are_read_as_json_reads_them(chunk: int) -> None:
    rng = random.Random(SEED + chunk)
    for v in VALUES[chunk::4]:
        written = json.dumps(v, indent=rng.choice([None, 1]))
        padded = rng.choice(["", " ", "\n\t", "\r\n "]) + written + rng.choice(["", " \n"])
        assert same(json_codec.loads, json.loads, padded)
        at = rng.randint(0, 3)
        shifted = "x" * at + written + "tail"
        decoder = json.JSONDecoder()
        assert same(json_codec.raw_decode, decoder.raw_decode, shifted, at)
        assert same(json_codec.raw_decode, decoder.raw_decode, written)


BREAKERS = '{}[]",:\\ x0-+.eEtn\n\t\x00\ud800'


def broken(rng: random.Random, written: str) -> str:
    at = rng.randint(0, len(written))
    how = rng.randint(0, 2)
    if how == 0:
        return written[:at]
    if how == 1:
        return written[:at] + rng.choice(BREAKERS) + written[at:]
    return written[:at] + written[at + 1 :]


@pytest.mark.parametrize("chunk", range(4))
def test_broken_texts_fail_as_in_json(chunk: int) -> None:
    rng = random.Random(SEED * 3 + chunk)
    for v in VALUES[chunk::4]:
        written = json.dumps(v)
        for _ in range(5):
            bad = broken(rng, written)
            assert same(json_codec.loads, json.loads, bad)
            assert same(json_codec.raw_decode, json.JSONDecoder().raw_decode, bad)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1}',
        b" [1, 2] ",
        b"",
        b"\xef\xbb\xbf{}",
        '{"a": 1}'.encode("utf-16"),
        '{"a": 1}'.encode("utf-16-le"),
        '{"a": 1}'.encode("utf-16-be"),
        '{"a": 1}'.encode("utf-32"),
        '{"a": 1}'.encode("utf-32-le"),
        b"1",
        b"12",
        b"\x001",
        b'"\xff"',
        b'"\xed\xa0\x80"',
        bytearray(b'{"b": [true]}'),
        "\ufeff{}",
        "\ufeff",
        None,
        5,
        ["a"],
    ],
    ids=lambda raw: repr(raw)[:24],
)
def test_bytes_and_other_types_are_read_as_json_reads_them(raw: Any) -> None:
    assert same(json_codec.loads, json.loads, raw)


def test_constants_and_numbers_are_read_as_json_reads_them() -> None:
    for written in ["NaN", "-Infinity", "Infinity", "[1e400, -1e400, 1E5, -0, -0.0]",
                    "123456789012345678901234567890", "1.0e-5", "01", "-", "1.", ".5",
                    "tru", "nul", '"\\u00e9\\ud83d\\udd11"', '"\\x"', '"a\nb"']:  # fmt: skip
        assert same(json_codec.loads, json.loads, written)


def test_without_the_c_accelerator_json_itself_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "_json", None)  # import _json raises ImportError
    loads, raw_decode, dumps, canonical = json_codec._build()
    assert loads is json.loads
    for v in VALUES[:40]:
        for ours, theirs in encodings(v, dumps, canonical):
            assert ours == theirs
        assert same(raw_decode, json.JSONDecoder().raw_decode, json.dumps(v))
