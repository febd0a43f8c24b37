"""A file-backed stand-in for the OS keyring, for tests that must read and change
what bsecrets keeps there (the vault key, the audit anchor) the way an attacker
with the keyring or a second copy of it would.

In-process:

    from helpers.file_keyring import file_keyring  # noqa: F401

    def test_x(file_keyring):  # a FileKeyring; .entries() reads what is stored
        ...

It is a real ``keyring`` backend (``keyring.backend.KeyringBackend``), not a
mock of bsecrets: bsecrets talks to it through the ``keyring`` package as it
talks to the Secret Service.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend


class FileKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def entries(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return {}

    def _save(self, data: dict[str, str]) -> None:
        self.path.write_text(json.dumps(data))

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self.entries()
        data[f"{service}/{username}"] = password
        self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self.entries()
        data.pop(f"{service}/{username}", None)
        self._save(data)

    def find(self, prefix: str) -> tuple[str, str]:
        """The one entry whose key starts with ``prefix`` (service/account)."""
        found = [(k, v) for k, v in self.entries().items() if k.startswith(prefix)]
        assert len(found) == 1, found
        return found[0]

    def put(self, key: str, value: str) -> None:
        data = self.entries()
        data[key] = value
        self._save(data)


@pytest.fixture
def file_keyring(tmp_path: Path) -> Iterator[FileKeyring]:
    previous = keyring.get_keyring()
    backend = FileKeyring(tmp_path / "keyring.json")
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)
