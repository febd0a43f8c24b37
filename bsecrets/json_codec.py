"""JSON for the commands every script runs, from the C accelerator ``json`` itself uses.

``import json`` compiles seven regular expressions and loads four modules before any
text is read: about 1.1 ms of every ``get`` (bench/README.md, "JSON from ``_json``").
The work is done by the C module ``_json`` either way (``json.loads`` and ``json.dumps``
with their default arguments call its scanner and encoder); this module calls them
directly, as ``json`` does, with ``json``'s defaults, and gives the same results and the
same errors (``json.JSONDecodeError`` with the same message and position, ``TypeError``
for what JSON cannot hold, ``ValueError`` for a circular reference): ``json`` is
imported only to raise its error, or where ``_json`` is missing or differs (another
Python): then these are ``json``'s own functions. tests/test_json_codec.py compares
both on a seeded corpus of values, texts and broken texts.

* :func:`loads` is ``json.loads(text)``;
* :func:`raw_decode` is ``json.JSONDecoder().raw_decode(text, idx)``;
* :func:`dumps` is ``json.dumps(value, sort_keys=...)``; :func:`canonical` is ``json.dumps(value,
  sort_keys=True, separators=(",", ":"))`` (ASCII only): the audit events' and the
  records' form, which their MACs cover.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_WHITESPACE = " \t\n\r"  # json's WHITESPACE: what may stand before and after the value
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")  # UTF-8, -16 (and -32 LE starts so)


def _unserializable(value: Any) -> Any:
    """json.JSONEncoder.default: what JSON cannot hold."""
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _decode_error(message: str, text: str, pos: int) -> ValueError:
    from json import JSONDecodeError  # only to raise json's own error

    return JSONDecodeError(message, text, pos)


class _Context:
    """What ``_json.make_scanner`` reads from a json.JSONDecoder with its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "-Infinity": float("-inf"),
        "Infinity": float("inf"),
        "NaN": float("nan"),
    }.__getitem__


def _plain_text(data: bytes | bytearray) -> bool:
    """Whether json.loads reads ``data`` as UTF-8 (json.detect_encoding): no byte-order
    mark, no NUL among the first bytes; anything else goes to json itself."""
    if data.startswith(_BOMS):
        return False
    if len(data) >= 4 or len(data) == 2:
        return bool(data[0] and data[1])
    return True


def _build() -> tuple[Callable[..., Any], ...]:
    """(loads, raw_decode, dumps, canonical) on ``_json``; json's own where it is missing."""
    try:
        import _json

        scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # a JSONDecoder's shape

        def encoder(item_sep: str, key_sep: str, sorted_keys: bool) -> Callable[..., str]:
            def encode(value: Any, *, sort_keys: bool = sorted_keys) -> str:
                # a new encoder a call, as JSONEncoder.encode makes: its marks of the
                # containers being written (circular references) start empty
                make = _json.make_encoder(
                    {}, _unserializable, _json.encode_basestring_ascii, None, key_sep,
                    item_sep, sort_keys, False, True,
                )  # fmt: skip
                return "".join(make(value, 0))

            return encode

        plain, sorted_compact = encoder(", ", ": ", False), encoder(",", ":", True)
        if (
            plain({"b": [1.5, None, True], "a": "\u00e9"})
            != '{"b": [1.5, null, true], "a": "\\u00e9"}'
        ):
            raise ImportError("_json differs")  # pragma: no cover - another Python
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - another Python
        import json

        def json_dumps(value: Any, *, sort_keys: bool = False) -> str:
            return json.dumps(value, sort_keys=sort_keys)

        compact = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
        return json.loads, json.JSONDecoder().raw_decode, json_dumps, compact

    def raw_decode(text: str, idx: int = 0) -> tuple[Any, int]:
        try:
            found: tuple[Any, int] = scan(text, idx)
        except StopIteration as stop:
            raise _decode_error("Expecting value", text, stop.value) from None
        return found

    def loads(text: str | bytes | bytearray) -> Any:
        if isinstance(text, str):
            if text.startswith("\ufeff"):
                problem = "Unexpected UTF-8 BOM (decode using utf-8-sig)"
                raise _decode_error(problem, text, 0)
        elif isinstance(text, (bytes, bytearray)) and _plain_text(text):
            text = text.decode("utf-8", "surrogatepass")
        else:  # another type (json's TypeError), or text json reads as UTF-16/32
            import json

            return json.loads(text)
        start = len(text) - len(text.lstrip(_WHITESPACE))
        value, end = raw_decode(text, start)
        end = len(text) - len(text[end:].lstrip(_WHITESPACE))
        if end != len(text):
            raise _decode_error("Extra data", text, end)
        return value

    return loads, raw_decode, plain, sorted_compact


_BUILT = _build()
loads: Callable[[str | bytes | bytearray], Any] = _BUILT[0]
raw_decode: Callable[..., tuple[Any, int]] = _BUILT[1]  # (text, idx=0)
dumps: Callable[..., str] = _BUILT[2]  # (value, *, sort_keys=False)
canonical: Callable[[Any], str] = _BUILT[3]
