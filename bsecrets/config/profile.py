"""The profile model (``bsecrets.yaml``): a frozen :class:`Profile` of
:class:`EnvironmentConfig`, and the schema's names and limits.

What callers may rely on:

* Defaults are filled into ``EnvironmentConfig.options``: vault always has
  ``mount``, ``prefix`` (without leading/trailing ``/``) and ``auth`` (a dict
  with ``method`` and, for approle/kubernetes/jwt, ``mount``; kubernetes also
  ``jwt_path``); aws always has ``prefix``; local has no options. Optional keys
  without a default are absent when not set. Paths (``vault_file``, ``ca_cert``)
  are absolute, ``~`` expanded, relative ones taken from the profile's folder.
* The mappings are plain dicts; treat them as read-only.

Finding and loading a profile is bsecrets.config.loader; parsing, bsecrets.config.parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bsecrets.errors import (
    EnvironmentNotFound,
)
from bsecrets.named_tuples import NamedTuple

PROFILE_FILENAME = "bsecrets.yaml"
PROFILE_VERSION = 1
DEFAULT_VAULT_FILE = ".bsecrets/vault.db"
BACKENDS = ("local", "vault", "aws")
ENV_NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,62}"  # text: compiled where used (re caches it)
ENV_NAME_HINT = "environment names are 1 to 63 characters of a-z 0-9 _ -, starting with a-z or 0-9"
K8S_JWT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"

COMMON_KEYS = ("backend", "protected")
# rotation: {GLOB: {...}} (docs/rotation.md)
ROTATION_KEYS = ("max_age", "strategy", "overlap", "generate", "retries", "backoff", "hooks")
STRATEGIES = ("immediate", "graceful", "blue-green")
HOOK_STEPS = ("set", "test", "finish")
BACKEND_KEYS = {
    "local": (),
    "vault": (
        "address", "mount", "prefix", "namespace", "ca_cert", "auth", "insecure_http", "timeout",
        "offline",
    ),
    "aws": (
        "region", "prefix", "kms_key_id", "role_arn", "endpoint_url", "insecure_http", "timeout",
        "offline",
    ),
}  # fmt: skip
# ``timeout:`` of a remote environment: one operation's time budget, in seconds
TIMEOUT_MIN_S, TIMEOUT_MAX_S = 1.0, 3600.0
# method -> (required keys, {optional key: default, None when there is none})
AUTH_METHODS: dict[str, tuple[tuple[str, ...], dict[str, str | None]]] = {
    "token": ((), {"token_env": None}),
    "approle": (("role_id_env", "secret_id_env"), {"mount": "approle"}),
    "kubernetes": (("role",), {"jwt_path": K8S_JWT_PATH, "mount": "kubernetes"}),
    "jwt": (("role", "token_env"), {"mount": "jwt"}),
}
ENV_VAR_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"


class EnvironmentConfig(NamedTuple):
    """One validated environment of a profile (see the module docstring for ``options``)."""

    name: str
    backend: str  # "local" | "vault" | "aws"
    options: Mapping[str, Any]
    protected: bool = False
    line: int | None = None  # 1-based line of the environment's key in the file
    # secret name -> (generator, argument): ("password"|"hex"|"base64", N),
    # ("uuid", None), ("value", literal), ("from_env", VAR); see config/generators.py
    provision: Mapping[str, tuple[str, str | int | None]] = {}  # never mutated
    # name glob -> rotation policy as written (validated; models.RotationPolicy reads it)
    rotation: Mapping[str, Mapping[str, Any]] = {}  # never mutated


class PromotionRoute(NamedTuple):
    """What ``bsecrets promote`` moves from one environment to another (the profile's
    ``promote: {SOURCE: {TARGET: {names, rename, never}}}`` or ``--map FILE``;
    docs/promotion.md)."""

    source: str
    target: str
    names: tuple[str, ...] = ()  # the names or globs that go
    rename: Mapping[str, str] = {}  # source name -> target name; never mutated
    never: tuple[str, ...] = ()  # globs that never go, whatever else says so
    line: int | None = None  # where it is written


PROMOTE_KEYS = ("names", "rename", "never")


class Profile(NamedTuple):
    """A validated profile. ``environments`` keeps the file's order."""

    path: str  # absolute; text, not a Path: pathlib costs every command ~4 ms to import
    version: int
    default_env: str  # always names one of ``environments``
    vault_file: str  # absolute
    environments: Mapping[str, EnvironmentConfig]
    audit_retention: str | None = None  # "audit: {retention: 365d}": a valid duration
    promotions: tuple[PromotionRoute, ...] = ()  # "promote:", in file order
    break_glass_notify: tuple[str, ...] = ()  # "break_glass: {notify: CMD}": its argv
    metrics_names: bool = False  # "metrics: {names: true}": names as a metrics label

    def route(self, source: str, target: str) -> PromotionRoute | None:
        return next((r for r in self.promotions if (r.source, r.target) == (source, target)), None)

    def environment(self, name: str) -> EnvironmentConfig:
        """The environment called ``name``; EnvironmentNotFound (exit 3) if there is none."""
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(self.environments)
            raise EnvironmentNotFound(
                f"unknown environment '{name}'", hint=f"known environments: {known}"
            ) from None
