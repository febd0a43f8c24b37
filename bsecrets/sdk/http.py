"""The SDK over HTTP: ``Client(url=..., token=...)`` talks to ``bsecrets serve``
(docs/server.md) instead of opening the vault, with the same methods and results and
the same exceptions: the server's ``{"error", "hint", "kind"}`` becomes the
``bsecrets.errors`` class of that kind. Standard library only (urllib)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any

from bsecrets.errors import BackendUnavailable, BsecretsError, UsageError
from bsecrets.models import Secret, SecretSummary, SecretVersion, VersionState, WriteResult


def _error_classes() -> dict[str, type[BsecretsError]]:
    found: dict[str, type[BsecretsError]] = {}
    stack: list[type[BsecretsError]] = [BsecretsError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.kind, cls)
        stack.extend(cls.__subclasses__())
    return found


class HttpTransport:
    """One server, one token; every call one request (``timeout`` seconds)."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"url must be http(s)://HOST:PORT, not {url[:60]!r}")
        if not token:
            raise UsageError(
                "a Client with a url needs a token",
                hint="Client(url=..., token=...) or BSECRETS_TOKEN",
            )
        self.base = url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._kinds = _error_classes()
        self._default_env: str | None = None

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:  # fmt: skip
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json",
                     **({"Content-Type": "application/json"} if data else {}),
                     **(headers or {})},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise self._error(exc) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackendUnavailable(
                f"cannot reach the bsecrets server at {self.base}: {reason}",
                hint="check that 'bsecrets serve' runs there",
            ) from None

    def _error(self, exc: urllib.error.HTTPError) -> BsecretsError:
        try:
            body = json.loads(exc.read())
            kind, message, hint = str(body["kind"]), str(body["error"]), body.get("hint")
        except (ValueError, KeyError, TypeError):
            return BackendUnavailable(f"the bsecrets server answered HTTP {exc.code}")
        cls = self._kinds.get(kind)
        if cls is None:  # a kind of the server's own (rate_limited): keep its word
            cls = self._kinds[kind] = type("ServerError", (BsecretsError,), {"kind": kind})
        return cls(message, hint=hint)

    @staticmethod
    def _path(env: str, name: str = "", route: str = "secrets") -> str:
        quoted = urllib.parse.quote(env, safe="")
        tail = "/" + urllib.parse.quote(name, safe="/") if name else ""
        return f"/v1/envs/{quoted}/{route}{tail}"

    # --- the operations -----------------------------------------------------------

    def default_env(self) -> str:
        """The server profile's default environment, asked once (not at every call)."""
        if self._default_env is None:
            self._default_env = str(self.call("GET", "/v1/envs")["default"])
        return self._default_env

    def get(self, env: str, name: str, version: int | None) -> Secret:
        query = f"?version={version}" if version is not None else ""
        found = self.call("GET", self._path(env, name) + query)
        return Secret(
            found["name"], found["env"], int(found["version"]), _value_of(found),
            datetime.fromisoformat(found["created_at"]), str(found["created_by"]),
            dict(found["tags"]), str(found["description"]), bool(found.get("stale")),
        )  # fmt: skip

    def put(
        self, env: str, name: str, value: bytes, tags: dict[str, str] | None,
        if_version: int | None,
    ) -> WriteResult:  # fmt: skip
        try:
            body: dict[str, Any] = {"value": value.decode("utf-8")}
        except UnicodeDecodeError:
            body = {"value_base64": base64.b64encode(value).decode()}
        if tags is not None:
            body["tags"] = tags
        headers = {"If-Match": str(if_version)} if if_version is not None else None
        done = self.call("PUT", self._path(env, name), body, headers)
        return WriteResult(name=done["name"], env=done["env"], version=int(done["version"]))

    def ls(self, env: str, prefix: str) -> list[SecretSummary]:
        query = "?" + urllib.parse.urlencode({"prefix": prefix}) if prefix else ""
        return [
            SecretSummary(s["name"], int(s["version"]), datetime.fromisoformat(s["updated_at"]),
                          dict(s["tags"]))
            for s in self.call("GET", self._path(env) + query)
        ]  # fmt: skip

    def history(self, env: str, name: str) -> list[SecretVersion]:
        return [
            SecretVersion(int(v["version"]), datetime.fromisoformat(v["created_at"]),
                          str(v["created_by"]), VersionState(v["state"]))
            for v in self.call("GET", self._path(env, name, "history"))
        ]  # fmt: skip

    def health(self) -> dict[str, Any]:
        found: dict[str, Any] = self.call("GET", "/v1/health")
        return found

    def read(self, env: str, only: list[str]) -> dict[str, bytes]:
        """Name -> current value, in one audited read (POST /v1/envs/ENV/read)."""
        found = self.call("POST", self._path(env, route="read"), {"only": only})
        return {name: _value_of(item) for name, item in found["values"].items()}

    def rotate(self, env: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        done: dict[str, Any] = self.call("POST", self._path(env, name, "rotate"), body)
        return done

    def promote(self, body: dict[str, Any]) -> dict[str, Any]:
        done: dict[str, Any] = self.call("POST", "/v1/promote", body)
        return done


def _value_of(item: dict[str, Any]) -> bytes:
    """A value as the server sends it (server/routing.value_json)."""
    if item["encoding"] == "base64":
        return base64.b64decode(item["value"])
    return str(item["value"]).encode("utf-8")
