"""Fixed values the tests use."""

from __future__ import annotations

# The passphrase of the ``vault`` fixture's vault (and of vaults tests make in-process).
PASSPHRASE = "correct horse battery staple"
# A value that must never show up where a secret must not: output, errors, logs.
CANARY = "canary-9f8e7d6c5b4a"

# Values hostile to every export format: quotes, newlines, shell syntax, comment
# characters, backslashes, carriage returns, an empty value and the canary.
HOSTILE = {
    "SQ": "it's a 'quoted' value",
    "DQ": 'say "hi"',
    "MULTI": "line one\nline two\n\nline four\n",
    "CMD": "$(touch pwned) and `id` and ${HOME} and $HOME",
    "UNI": "päss wörd ✓ 鍵 🔑",
    "HASH": "value # not a comment",
    "HASH2": "#starts-with-hash",
    "SPACES": "  leading and trailing  ",
    "BACKSLASH": "C:\\path\\to\\n\\t",
    "TRAIL": "ends with backslash\\",
    "MIX": "a'b\"c\\d$e`f\ng",
    "CRLF": "windows\r\nline",
    "EQ": "a=b=c",
    "EMPTY": "",
    "CANARY": CANARY,
    "TAB": "col1\tcol2",
    "ESCAPES": "\\n is not a newline, \\\\ two",
}
