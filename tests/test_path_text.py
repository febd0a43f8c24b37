"""Paths as text (files.py): ``tidy``, ``parent`` and ``exists`` answer as pathlib does,
so the hot commands keep pathlib unloaded and print the same paths in their messages."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from bsecrets.files import exists, parent, tidy

RANDOM = random.Random(20261201)
TEXTS = ["", ".", "..", "/", "//", "///", "a", "/a", "a/", "a//b", "/a/./b/", "./a", "a/..",
         "//x/y", "///x", "../a/./", "/./", "~/x", "a b/c", "é/ü"]  # fmt: skip
TEXTS += ["".join(RANDOM.choice("/.ab") for _ in range(RANDOM.randint(1, 10))) for _ in range(3000)]


def test_tidy_spells_a_path_as_pathlib_does() -> None:
    for text in TEXTS:
        if text:  # Path("") is "."; tidy is never given ""
            assert tidy(text) == str(Path(text)), text


def test_parent_is_pathlibs_parent() -> None:
    for text in TEXTS:
        if text and not text.startswith("//"):  # POSIX's implementation-defined "//"
            assert parent(text) == str(Path(text).parent), text
    assert parent(Path("/a/b")) == "/a"


def test_exists_answers_as_pathlib(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    cases = ["file", "dir", "missing", "file/under", "loop", "dangling", "dir/../file", "a\0b"]
    for case in cases:
        path = tmp_path / case if "\0" not in case else Path(str(tmp_path) + "/" + case)
        assert exists(path) == path.exists(), case
        assert exists(os.fspath(path)) == path.exists(), case


@pytest.mark.skipif(os.geteuid() == 0, reason="root searches any folder")
def test_a_folder_that_cannot_be_searched_raises_as_pathlib(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir()
    (closed / "file").write_text("x")
    closed.chmod(0)
    try:
        with pytest.raises(PermissionError):
            Path(closed / "file").exists()
        with pytest.raises(PermissionError):
            exists(closed / "file")
    finally:
        closed.chmod(0o700)
