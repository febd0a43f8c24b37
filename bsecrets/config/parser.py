"""Parsing and validating profile YAML (imported only when a profile is parsed
or written: PyYAML and this walker cost about 15-20 ms, which everyday commands
skip through bsecrets.config.cache)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bsecrets.config.profile import (
    AUTH_METHODS,
    BACKEND_KEYS,
    BACKENDS,
    COMMON_KEYS,
    DEFAULT_VAULT_FILE,
    ENV_NAME_HINT,
    ENV_NAME_RE,
    ENV_VAR_RE,
    PROFILE_VERSION,
    TIMEOUT_MAX_S,
    TIMEOUT_MIN_S,
    YAML_TAG,
    EnvironmentConfig,
    Profile,
)
from bsecrets.errors import ProfileError, UsageError

if TYPE_CHECKING:
    from yaml.nodes import Node


def parse_profile(text: str, shown: str, absolute: Path) -> Profile:
    root = _compose(text, shown)
    return _Checker(shown, absolute.parent).profile(root, absolute)


def render(environments: list[str], default_env: str, vault_file: str = DEFAULT_VAULT_FILE) -> str:
    """The YAML text ``bsecrets init`` writes: every environment on the local backend.

    Raises UsageError (exit 2) for an invalid or missing environment name.
    :func:`load_profile` accepts the result.
    """
    names = list(dict.fromkeys(environments))
    if not names:
        raise UsageError("a profile needs at least one environment")
    for name in names:
        if not ENV_NAME_RE.fullmatch(name):
            raise UsageError(f"invalid environment name {name!r}", hint=ENV_NAME_HINT)
    if default_env not in names:
        raise UsageError(f"default environment '{default_env}' is not one of: {', '.join(names)}")
    lines = [
        "# bsecrets profile: which environments exist and where their secrets live.",
        f"version: {PROFILE_VERSION}",
        f"default_env: {_yaml_str(default_env)}",
        f"vault_file: {_yaml_str(vault_file)}   # the local vault, relative to this file",
        "environments:",
    ]
    for name in names:
        lines += [f"  {_yaml_str(name)}:", "    backend: local"]
    lines += [
        "  # Remote backends look like this (see the profile section of the docs):",
        "  # staging:",
        "  #   backend: vault",
        "  #   address: https://vault.example.com:8200   # else VAULT_ADDR",
        "  #   prefix: myapp/staging",
        "  #   auth: {method: token}   # or approle, kubernetes, jwt",
        "  # prod:",
        "  #   backend: aws",
        "  #   region: eu-west-1",
        "  #   prefix: myapp/prod/",
        "  #   kms_key_id: alias/myapp-prod",
        "  #   protected: true",
    ]
    return "\n".join(lines) + "\n"


T = TypeVar("T")
_Reader = Callable[["Node", str], T]


def _yaml_str(value: str) -> str:
    """``value`` as a YAML scalar: plain when it reads back as the same string."""
    import yaml

    if re.fullmatch(r"[A-Za-z0-9_./~-]+", value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar


def _compose(text: str, shown: str) -> Node:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = f"invalid YAML: {exc.problem or 'syntax error'}"
        if exc.context and exc.context_mark:  # e.g. where an unclosed quote started
            problem += f" ({exc.context}, line {exc.context_mark.line + 1})"
        raise ProfileError(shown, line, "", problem) from None
    except yaml.YAMLError as exc:
        raise ProfileError(shown, None, "", f"invalid YAML: {exc}") from None
    if root is None:
        hint = "a profile needs at least 'version: 1' and 'environments:'"
        raise ProfileError(shown, None, "", "the profile is empty", hint=hint)
    return root


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _shape(node: Node) -> str:
    """One of "scalar", "mapping", "sequence"."""
    from yaml.nodes import MappingNode, ScalarNode

    if isinstance(node, ScalarNode):
        return "scalar"
    return "mapping" if isinstance(node, MappingNode) else "sequence"


def _got(node: Node) -> str:
    """`` (got a list)`` and the like, to make a type error concrete."""
    if _shape(node) != "scalar":
        return f" (got a {'list' if _shape(node) == 'sequence' else 'mapping'})"
    return " (got nothing)" if node.tag == YAML_TAG + "null" else f" (got {json.dumps(node.value)})"


class _Checker:
    """Reads typed values off the node tree; every error carries a line and a key path."""

    def __init__(self, shown: str, base: Path) -> None:
        self.shown = shown
        self.base = base  # the profile's folder, for relative paths

    def error(
        self, where: Node | int, key_path: str, problem: str, hint: str | None = None
    ) -> ProfileError:
        line = where if isinstance(where, int) else _line(where)
        return ProfileError(self.shown, line, key_path, problem, hint=hint)

    def typed(self, node: Node, key_path: str, tag: str, what: str) -> str:
        """The scalar text of ``node`` if YAML resolved it to ``tag``, else a type error."""
        if _shape(node) == "scalar" and node.tag == YAML_TAG + tag:
            return str(node.value)
        hint = None
        if tag == "str" and _shape(node) == "scalar" and node.tag != YAML_TAG + "null":
            hint = f"quote it to keep it as text: {json.dumps(node.value)}"
        raise self.error(node, key_path, f"must be {what}{_got(node)}", hint)

    def string(self, node: Node, key_path: str) -> str:
        return self.typed(node, key_path, "str", "a string")

    def boolean(self, node: Node, key_path: str) -> bool:
        return self.typed(node, key_path, "bool", "true or false").lower() in ("true", "yes", "on")

    def url(self, node: Node, key_path: str) -> str:
        value = self.string(node, key_path)
        if not value.startswith(("http://", "https://")):
            raise self.error(node, key_path, "must start with http:// or https://")
        return value

    def arn(self, node: Node, key_path: str) -> str:
        value = self.string(node, key_path)
        if not value.startswith("arn:"):
            raise self.error(node, key_path, "must be an ARN (arn:...)")
        return value

    def env_var(self, node: Node, key_path: str) -> str:
        value = self.string(node, key_path)
        if not ENV_VAR_RE.fullmatch(value):
            raise self.error(node, key_path, "must be an environment variable name")
        return value

    def path(self, node: Node, key_path: str) -> str:
        value = self.string(node, key_path)
        if not value:
            raise self.error(node, key_path, "must not be empty")
        return os.path.abspath(self.base / os.path.expanduser(value))

    def seconds(self, node: Node, key_path: str) -> float:
        """A time budget: seconds (30, 2.5) or a duration (45s, 2m), 1 s to 1 h."""
        from bsecrets.timeutil import parse_duration

        what = f"{TIMEOUT_MIN_S:g} to {TIMEOUT_MAX_S:g} seconds"
        hint = "give seconds (30, 2.5) or a duration (45s, 2m)"
        if _shape(node) == "scalar" and node.tag in (YAML_TAG + "int", YAML_TAG + "float"):
            text = str(node.value).replace("_", "")
            try:
                value = float(text) if len(text) <= 20 else float("inf")
            except ValueError:
                value = float("nan")
        else:
            try:
                value = parse_duration(self.string(node, key_path)).total_seconds()
            except UsageError:
                raise self.error(node, key_path, f"must be {what}", hint) from None
        if not TIMEOUT_MIN_S <= value <= TIMEOUT_MAX_S:  # also refuses nan
            raise self.error(node, key_path, f"must be {what}", hint)
        return value

    def stripped(self, node: Node, key_path: str) -> str:
        value = self.string(node, key_path).strip("/")
        if not value:
            raise self.error(node, key_path, "must not be empty")
        return value

    def mapping(self, node: Node, key_path: str, line: int) -> _Map:
        return _Map(self, node, key_path, line)

    # -- the schema

    def profile(self, root: Node, path: Path) -> Profile:
        top = self.mapping(root, "", _line(root))
        top.only(("version", "default_env", "vault_file", "environments", "audit"))
        version = top.require("version", self.version)
        envs = top.require("environments", lambda n, kp: self.mapping(n, kp, _line(n)))
        if not envs.items:
            hint = "add at least one environment, e.g. 'dev: {backend: local}'"
            raise self.error(envs.line, "environments", "must not be empty", hint)
        environments = {name: self.environment(name, *pair) for name, pair in envs.items.items()}
        default_env = top.get("default_env", self.string, next(iter(environments)))
        if default_env not in environments:
            hint = f"known environments: {', '.join(environments)}"
            where = top.items["default_env"][1]
            raise self.error(where, "default_env", f"no environment named '{default_env}'", hint)
        default_vault = os.path.abspath(self.base / DEFAULT_VAULT_FILE)
        vault_file = top.get("vault_file", self.path, default_vault)
        retention = top.opt("audit", self.audit)
        return Profile(path, version, default_env, Path(vault_file), environments, retention)

    def audit(self, node: Node, key_path: str) -> str | None:
        """``audit: {retention: 365d}``: how long events stay in the live log."""
        section = self.mapping(node, key_path, _line(node))
        section.only(("retention",))
        return section.opt("retention", self.duration)

    def duration(self, node: Node, key_path: str) -> str:
        from bsecrets.timeutil import parse_duration

        text = self.string(node, key_path)
        try:
            parse_duration(text)
        except UsageError as exc:
            raise self.error(node, key_path, exc.message, exc.hint) from None
        return text

    def version(self, node: Node, key_path: str) -> int:
        from yaml.constructor import SafeConstructor

        self.typed(node, key_path, "int", "an integer")
        if len(str(node.value)) > 18:  # past 64 bits (and Python's int digit limit)
            raise self.error(node, key_path, f"must be {PROFILE_VERSION}")
        version = int(SafeConstructor().construct_yaml_int(node))  # type: ignore[arg-type]
        if version > PROFILE_VERSION:
            raise self.error(
                node,
                key_path,
                f"the profile is version {version}, written by a newer bsecrets "
                f"(this one reads version {PROFILE_VERSION})",
                hint="upgrade bsecrets: 'pip install --upgrade bsecrets'",
            )
        if version != PROFILE_VERSION:
            raise self.error(node, key_path, f"must be {PROFILE_VERSION}")
        return version

    def environment(self, name: str, key_node: Node, node: Node) -> EnvironmentConfig:
        key_path, line = f"environments.{name}", _line(key_node)
        if not ENV_NAME_RE.fullmatch(name):
            raise self.error(line, key_path, "invalid environment name", ENV_NAME_HINT)
        env = self.mapping(node, key_path, line)
        backend = env.require("backend", self.string)
        if backend not in BACKENDS:
            where = env.items["backend"][1]
            raise self.error(where, f"{key_path}.backend", f"must be one of {', '.join(BACKENDS)}")
        others = [key for keys in BACKEND_KEYS.values() for key in keys]
        provision_entry = env.items.pop("provision", None)  # any backend; read below
        env.only(COMMON_KEYS + BACKEND_KEYS[backend], f"backend {backend}", others)
        protected = env.get("protected", self.boolean, False)
        options: dict[str, Any] = {}
        if backend == "vault":
            options["address"] = env.opt("address", self.url)
            options["mount"] = env.get("mount", self.stripped, "secret")
            options["prefix"] = env.require("prefix", self.stripped)
            options["namespace"] = env.opt("namespace", self.string)
            options["ca_cert"] = env.opt("ca_cert", self.path)
            options["auth"] = env.get("auth", self.auth, {"method": "token"})
            options["insecure_http"] = env.opt("insecure_http", self.boolean)
            options["timeout"] = env.opt("timeout", self.seconds)
        elif backend == "aws":
            options["region"] = env.opt("region", self.string)
            options["prefix"] = env.get("prefix", self.string, "")
            options["kms_key_id"] = env.opt("kms_key_id", self.string)
            options["role_arn"] = env.opt("role_arn", self.arn)
            options["endpoint_url"] = env.opt("endpoint_url", self.url)
            options["insecure_http"] = env.opt("insecure_http", self.boolean)
            options["timeout"] = env.opt("timeout", self.seconds)
        options = {key: value for key, value in options.items() if value is not None}
        provision: dict[str, tuple[str, str | int | None]] = {}
        if provision_entry is not None:
            provision = self.provision(provision_entry[1], f"{key_path}.provision")
        return EnvironmentConfig(name, backend, options, protected, line, provision)

    def provision(self, node: Node, key_path: str) -> dict[str, tuple[str, str | int | None]]:
        """``provision:`` name -> generator (see bsecrets.config.generators)."""
        from bsecrets.config.generators import GENERATOR_HINT, parse_generator
        from bsecrets.errors import InvalidName
        from bsecrets.models import validate_name

        table = self.mapping(node, key_path, _line(node))
        out: dict[str, tuple[str, str | int | None]] = {}
        for name, (key_node, value_node) in table.items.items():
            sub = table.sub(name)
            try:
                validate_name(name)
            except InvalidName as exc:
                raise self.error(key_node, sub, "invalid secret name", exc.hint) from None
            if _shape(value_node) == "mapping":
                spec = self.mapping(value_node, sub, _line(value_node))
                spec.only(("value", "from_env"))
                if len(spec.items) != 1:
                    raise self.error(
                        value_node, sub, "give exactly one of value, from_env", GENERATOR_HINT
                    )
                if "value" in spec.items:
                    out[name] = ("value", spec.require("value", self.string))
                else:
                    out[name] = ("from_env", spec.require("from_env", self.env_var))
                continue
            text = self.string(value_node, sub)
            try:
                out[name] = parse_generator(text)
            except ValueError as exc:
                raise self.error(value_node, sub, str(exc), GENERATOR_HINT) from None
        return out

    def auth(self, node: Node, key_path: str) -> dict[str, str]:
        auth = self.mapping(node, key_path, _line(node))
        method = auth.get("method", self.string, "token")
        if method not in AUTH_METHODS:
            where = auth.items["method"][1]
            problem = f"must be one of {', '.join(AUTH_METHODS)}"
            raise self.error(where, f"{key_path}.method", problem)
        required, optional = AUTH_METHODS[method]
        others = [key for req, opt in AUTH_METHODS.values() for key in (*req, *opt)]
        auth.only(("method", *required, *optional), f"method {method}", others)
        result = {"method": method}
        for key in required:
            result[key] = auth.require(key, self.auth_reader(key))
        for key, default in optional.items():
            value = auth.get(key, self.auth_reader(key), default)
            if value is not None:
                result[key] = value
        return result

    def auth_reader(self, key: str) -> _Reader[str]:
        if key.endswith("_env"):
            return self.env_var
        return self.stripped if key == "mount" else self.string


class _Map:
    """A YAML mapping with unique plain-scalar keys (in file order), read key by key."""

    def __init__(self, checker: _Checker, node: Node, key_path: str, line: int) -> None:
        self.checker, self.key_path, self.line = checker, key_path, line
        if _shape(node) != "mapping":
            raise checker.error(node, key_path, f"must be a mapping{_got(node)}")
        self.items: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if _shape(key_node) != "scalar" or key_node.tag == YAML_TAG + "merge":
                problem = "keys must be plain strings (no '<<' merges)"
                raise checker.error(key_node, key_path, problem)
            key = str(key_node.value)
            if key in self.items:
                first = _line(self.items[key][0])
                problem = f"duplicate key (first on line {first})"
                raise checker.error(key_node, self.sub(key), problem)
            self.items[key] = (key_node, value_node)

    def sub(self, key: str) -> str:
        return f"{self.key_path}.{key}" if self.key_path else key

    def only(self, allowed: Iterable[str], owner: str = "", others: Iterable[str] = ()) -> None:
        """Refuse keys outside ``allowed``; keys in ``others`` are "not used by <owner>"."""
        allowed, others = tuple(allowed), set(others)
        for key, (key_node, _) in self.items.items():
            if key not in allowed:
                problem = f"not used by {owner}" if key in others else "unknown key"
                hint = f"allowed here: {', '.join(allowed)}"
                raise self.checker.error(key_node, self.sub(key), problem, hint)

    def get(self, key: str, read: _Reader[T], default: T) -> T:
        return default if key not in self.items else read(self.items[key][1], self.sub(key))

    def opt(self, key: str, read: _Reader[T]) -> T | None:
        return None if key not in self.items else read(self.items[key][1], self.sub(key))

    def require(self, key: str, read: _Reader[T]) -> T:
        if key not in self.items:
            raise self.checker.error(self.line, self.sub(key), "required key is missing")
        return read(self.items[key][1], self.sub(key))
