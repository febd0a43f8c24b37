"""Streaming redaction of secret values in a child's output.

Works on bytes, never decodes: output that is not UTF-8 passes through
unchanged, and because every pattern is a whole value (or a whole line of a
multi-line value), a match can only cover whole UTF-8 characters.

- every occurrence of every value is covered, overlapping ones merged, so no
  byte of any value shows (longer values are not cut short by shorter ones);
- a value split across two reads is still caught: the tail of a read that
  could begin a value is held back until the next read (or the end) decides;
  nothing else is held, so a prompt without a newline still shows at once;
- values shorter than ``MIN_CHARS`` characters are left alone (they would
  redact ordinary text);
- the lines of a multi-line value are patterns too: a program printing one
  line of a PEM key, or a terminal turning ``\\n`` into ``\\r\\n``, is caught.
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = b"[REDACTED]"
MIN_CHARS = 4
# A run of overlapping values that keeps growing is emitted (redacted) once
# held data passes this size, so memory stays bounded.
_MAX_HELD = 4 * 1024 * 1024


def _long_enough(value: bytes) -> bool:
    return len(value.decode("utf-8", errors="surrogateescape")) >= MIN_CHARS


def patterns(values: Iterable[bytes]) -> list[bytes]:
    """The byte strings to redact: values and their lines, longest first."""
    found: set[bytes] = set()
    for value in values:
        for candidate in (value, *value.splitlines()):
            if _long_enough(candidate):
                found.add(candidate)
    return sorted(found, key=lambda p: (-len(p), p))


class Redactor:
    """Feed chunks of one stream; get back what is safe to write."""

    def __init__(self, values: Iterable[bytes], replacement: bytes = REDACTED) -> None:
        self._patterns = patterns(values)
        self._replacement = replacement
        self._pending = b""

    def add(self, values: Iterable[bytes]) -> None:
        """Also redact ``values`` from now on (exec --watch: the new values of a change;
        the old ones stay redacted too)."""
        found = set(self._patterns) | set(patterns(values))
        self._patterns = sorted(found, key=lambda p: (-len(p), p))

    def __repr__(self) -> str:  # never show the patterns
        return f"Redactor({len(self._patterns)} patterns)"

    def feed(self, data: bytes) -> bytes:
        return self._process(self._pending + data, final=False)

    def flush(self) -> bytes:
        """At the end of the stream: everything still held, redacted."""
        return self._process(self._pending, final=True)

    def _partial_start(self, buf: bytes) -> int:
        """The earliest position whose rest of ``buf`` is a proper prefix of a pattern."""
        n = len(buf)
        earliest = n
        for p in self._patterns:
            low = max(n - len(p) + 1, 0)
            if low >= earliest:
                continue
            first = p[:1]
            i = buf.find(first, low, earliest)
            while i != -1:
                if p.startswith(buf[i:]):
                    earliest = i
                    break
                i = buf.find(first, i + 1, earliest)
        return earliest

    def _process(self, buf: bytes, *, final: bool) -> bytes:
        self._pending = b""
        if not self._patterns or not buf:
            return buf
        cut = len(buf) if final else self._partial_start(buf)
        occurrences = []
        for p in self._patterns:
            i = buf.find(p)
            while i != -1:
                occurrences.append((i, i + len(p)))
                i = buf.find(p, i + 1)
        occurrences.sort()
        merged: list[list[int]] = []
        for start, end in occurrences:
            if merged and start < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            elif start >= cut:
                break
            else:
                merged.append([start, end])
        emit_end = cut
        if merged and merged[-1][1] > cut and not final:
            # the last run reaches into the undecided tail: it may still grow
            start = merged[-1][0]
            if len(buf) - start <= _MAX_HELD:
                merged.pop()
                emit_end = start
            else:
                emit_end = merged[-1][1]
        elif merged:
            emit_end = max(cut, merged[-1][1])
        out = []
        pos = 0
        for start, end in merged:
            out.append(buf[pos:start])
            out.append(self._replacement)
            pos = end
        out.append(buf[pos:emit_end])
        self._pending = buf[emit_end:]
        return b"".join(out)
