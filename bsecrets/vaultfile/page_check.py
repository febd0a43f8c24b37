"""SQLite's own page-level check of the vault file, for ``bsecrets verify``.

:func:`page_problems` runs ``PRAGMA integrity_check`` and names, for each problem,
the table whose page or index is damaged, so the report says what was lost.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3

from bsecrets.vaultfile.sqlite_errors import printable, shown

PAGE_PROBLEMS = 100  # integrity_check stops after this many (bsecrets verify)


def page_problems(conn: sqlite3.Connection, limit: int = PAGE_PROBLEMS) -> list[tuple[str, str]]:
    """SQLite's own check of the file: every page, b-tree, index entry and
    NOT NULL constraint (``PRAGMA integrity_check(limit)``: it stops after
    ``limit`` problems; ``quick_check`` when the full check cannot run). Returns
    (table, problem) pairs, the table being where the damaged page or index
    belongs ("file" when SQLite's message or the file does not say); [] when
    intact. Reads every page: about as long as copying the file. Never raises
    for a damaged file: the damage is what it reports."""
    messages = _check_messages(conn, f"({int(limit)})")
    if messages is None:  # the whole-file check gave up: check table by table
        return _table_problems(conn, limit)
    if messages == ["ok"]:
        return []
    owners = _page_owners(conn)
    return [(_table_of(text, *owners), printable(text)) for text in messages]


def _check_messages(conn: sqlite3.Connection, argument: str) -> list[str] | None:
    """integrity_check's lines (quick_check's when it cannot run); None when both
    stop with an error instead of a report (SQLite does that for some damage)."""
    for pragma in ("integrity_check", "quick_check"):
        try:
            rows = conn.execute(f"PRAGMA {pragma}{argument}").fetchall()
        except (sqlite3.Error, UnicodeDecodeError):
            continue
        messages = [
            line.strip()
            for (text,) in rows
            for line in str(text).splitlines()
            if line.strip() and not line.startswith("*** in database")
        ]
        if len(messages) > 1 and messages[-1] == "database disk image is malformed":
            messages.pop()  # said after the problems it sums up
        return messages
    return None


def _table_problems(conn: sqlite3.Connection, limit: int) -> list[tuple[str, str]]:
    """Each table's own check (``PRAGMA integrity_check(TABLE)``), to say which
    table is damaged when the whole-file check stops at the first bad page."""
    try:
        tables = [
            str(name)
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        return [("file", shown(exc))]
    problems: list[tuple[str, str]] = []
    for table in tables:
        if not re.fullmatch(r"\w+", table):
            problems.append(("file", "a table with an unexpected name"))
            continue
        messages = _check_messages(conn, f"('{table}')")
        if messages is None:
            problems.append((table, "database disk image is malformed"))
        elif messages != ["ok"]:
            problems += [(table, printable(text)) for text in messages[:limit]]
    return problems or [("file", "database disk image is malformed")]


def _page_owners(conn: sqlite3.Connection) -> tuple[dict[str, str], dict[int, str]]:
    """(object -> its table, page -> object) for naming where damage is. The page
    map comes from dbstat, where the build has it and the file lets it walk."""
    tables: dict[str, str] = {}
    pages: dict[int, str] = {}
    with contextlib.suppress(sqlite3.Error, UnicodeDecodeError, ValueError, TypeError):
        for name, table in conn.execute("SELECT name, tbl_name FROM sqlite_master"):
            tables[str(name)] = str(table)
        for name, page in conn.execute("SELECT name, pageno FROM dbstat"):
            pages[int(page)] = str(name)  # up to where a damaged tree stops the walk
    return tables, pages


def _table_of(message: str, tables: dict[str, str], pages: dict[int, str]) -> str:
    """The table one integrity_check message is about (by page or index), else "file"."""
    page = re.match(r"(?:On tree page|Page) (\d+)\b", message)
    if page and int(page[1]) in pages:
        name = pages[int(page[1])]
        return tables.get(name, name)
    named = re.search(r"\bindex (\w+)", message) or re.match(r"NULL value in (\w+)\.", message)
    if named:
        return tables.get(named[1], named[1])
    return "file"
