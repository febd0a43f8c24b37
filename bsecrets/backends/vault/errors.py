"""Vault's answers, before and after they get a meaning. Cheap to import.

The transport turns every 4xx from hvac into a :class:`VaultHTTPError` (status
and Vault's ``errors`` list, the hvac exception kept as the cause); the adapter
gives it a meaning in context (a 404 on a read is SecretNotFound, on a login
it is a misconfigured auth mount) and raises the project's errors. Transport
failures (network, TLS, 5xx after retries) become BackendUnavailable in the
transport itself. No message carries a token or a secret value.
"""

from __future__ import annotations

from typing import Any

from bsecrets.errors import BsecretsError, Denied, NextStep, VersionConflict

_MAX_DETAIL = 200


class VaultHTTPError(Exception):
    """A 4xx answer from Vault (or 501), not yet translated."""

    def __init__(self, status: int, errors: list[str], body: Any = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.errors = [str(e) for e in errors]
        self.body = body  # the JSON body, when there was one (KV v2 404s carry metadata)

    @property
    def detail(self) -> str:
        """Vault's own words, on one line, shortened."""
        text = "; ".join(" ".join(e.split()) for e in self.errors if e.strip())
        text = text.replace("1 error occurred: * ", "")
        return (text[: _MAX_DETAIL - 3] + "...") if len(text) > _MAX_DETAIL else text

    @property
    def is_cas_mismatch(self) -> bool:
        return self.status == 400 and any("check-and-set" in e for e in self.errors)

    @property
    def is_denied(self) -> bool:
        return self.status in (401, 403)


def translate(
    exc: VaultHTTPError, *, what: str, env: str, hint: str | None = None
) -> BsecretsError:
    """The generic meaning of a Vault answer to ``what`` (e.g. "reading secret 'db'")."""
    if exc.is_denied:
        return Denied(
            f"Vault denied {what} in environment '{env}' ({exc.detail or 'permission denied'})",
            hint=hint or "check the Vault token and its policies",
            step=None if hint else NextStep("check_vault_policy", env=env),
        )
    if exc.is_cas_mismatch:
        return VersionConflict(f"{what}: another writer changed it first; nothing was overwritten")
    return BsecretsError(
        f"Vault refused {what} in environment '{env}' (HTTP {exc.status}: {exc.detail or '-'})",
        hint=hint,
    )
