"""Parsing and validating profile YAML (imported only when a profile is parsed
or written: PyYAML and this walker cost about 15-20 ms, which everyday commands
skip through bsecrets.config.cache)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bsecrets.config.generators import GENERATOR_HINT, parse_generator
from bsecrets.config.profile import (
    AUTH_METHODS,
    BACKEND_KEYS,
    BACKENDS,
    COMMON_KEYS,
    DEFAULT_VAULT_FILE,
    ENV_NAME_HINT,
    ENV_NAME_PATTERN,
    ENV_VAR_PATTERN,
    HOOK_STEPS,
    PROFILE_VERSION,
    PROMOTE_KEYS,
    ROTATION_KEYS,
    STRATEGIES,
    TIMEOUT_MAX_S,
    TIMEOUT_MIN_S,
    EnvironmentConfig,
    Profile,
    PromotionRoute,
)
from bsecrets.config.yamlreader import (
    ValueReader,
    YamlReader,
    compose,
    is_scalar,
    line_of,
    shape,
    yaml_int,
)
from bsecrets.errors import InvalidName, NextStep, ProfileError, UsageError
from bsecrets.models import validate_name
from bsecrets.timeutil import parse_duration

if TYPE_CHECKING:
    from yaml.nodes import Node


def parse_profile(text: str, shown: str, absolute: str) -> Profile:
    root = compose(text, shown)
    if root is None:
        hint = "a profile needs at least 'version: 1' and 'environments:'"
        raise ProfileError(shown, None, "", "the profile is empty", hint=hint)
    return _ProfileReader(shown, Path(absolute).parent).profile(root, absolute)


def read_route(path: Path) -> PromotionRoute:
    """A ``promote --map FILE``: one route's ``names``, ``rename`` and ``never``, checked
    as the profile's ``promote:`` routes are (errors name the file and line, exit 2)."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read --map {shown}: {why}") from None
    root = compose(text, shown)
    if root is None:
        hint = "write names: [...], and optionally rename: {...} and never: [...]"
        raise ProfileError(shown, None, "", "the mapping is empty", hint=hint)
    return _ProfileReader(shown, path.parent).route(root, "")


def render(environments: list[str], default_env: str, vault_file: str = DEFAULT_VAULT_FILE) -> str:
    """The YAML text ``bsecrets init`` writes: every environment on the local backend.

    Raises UsageError (exit 2) for an invalid or missing environment name.
    :func:`load_profile` accepts the result.
    """
    names = list(dict.fromkeys(environments))
    if not names:
        raise UsageError("a profile needs at least one environment")
    for name in names:
        if not re.fullmatch(ENV_NAME_PATTERN, name):
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


def _yaml_str(value: str) -> str:
    """``value`` as a YAML scalar: plain when it reads back as the same string."""
    import yaml

    if re.fullmatch(r"[A-Za-z0-9_./~-]+", value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar


class _ProfileReader(YamlReader):
    """The profile's schema, read off the node tree (see bsecrets.config.yamlreader)."""

    def __init__(self, shown: str, base: Path) -> None:
        super().__init__(shown)
        self.base = base  # the profile's folder, for relative paths

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
        if not re.fullmatch(ENV_VAR_PATTERN, value):
            raise self.error(node, key_path, "must be an environment variable name")
        return value

    def path(self, node: Node, key_path: str) -> str:
        value = self.string(node, key_path)
        if not value:
            raise self.error(node, key_path, "must not be empty")
        return os.path.abspath(self.base / os.path.expanduser(value))

    def seconds(self, node: Node, key_path: str) -> float:
        """A time budget: seconds (30, 2.5) or a duration (45s, 2m), 1 s to 1 h."""
        what = f"{TIMEOUT_MIN_S:g} to {TIMEOUT_MAX_S:g} seconds"
        hint = "give seconds (30, 2.5) or a duration (45s, 2m)"
        if is_scalar(node, "int") or is_scalar(node, "float"):
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

    # -- the schema

    def profile(self, root: Node, path: str) -> Profile:
        top = self.mapping(root, "")
        top.only(
            ("version", "default_env", "vault_file", "environments", "audit", "promote",
             "break_glass", "metrics")
        )  # fmt: skip
        version = top.require("version", self.version)
        envs = top.require("environments", self.mapping)
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
        routes: tuple[PromotionRoute, ...] = ()
        if "promote" in top.items:
            routes = self.promote(top.items["promote"][1], "promote", environments)
        empty: list[str] = []
        notify = tuple(top.get("break_glass", self.break_glass, empty))
        names = top.get("metrics", self.metrics, False)
        return Profile(path, version, default_env, vault_file, environments, retention,
                       routes, notify, names)  # fmt: skip

    def promote(
        self, node: Node, key_path: str, environments: dict[str, EnvironmentConfig]
    ) -> tuple[PromotionRoute, ...]:
        """``promote: {SOURCE: {TARGET: {names, rename, never}}}`` (docs/promotion.md)."""
        routes = []
        sources = self.mapping(node, key_path)
        for source, (source_key, targets_node) in sources.items.items():
            self.known_env(source_key, sources.sub(source), source, environments)
            targets = self.mapping(targets_node, sources.sub(source))
            for target, (target_key, route_node) in targets.items.items():
                self.known_env(target_key, targets.sub(target), target, environments)
                if target == source:
                    problem = "an environment does not promote to itself"
                    raise self.error(target_key, targets.sub(target), problem)
                routes.append(
                    self.route(route_node, targets.sub(target))._replace(
                        source=source, target=target
                    )
                )
        return tuple(routes)

    def known_env(
        self, node: Node, key_path: str, name: str, environments: dict[str, EnvironmentConfig]
    ) -> None:
        if name not in environments:
            hint = f"known environments: {', '.join(environments)}"
            raise self.error(node, key_path, f"no environment named '{name}'", hint)

    def route(self, node: Node, key_path: str) -> PromotionRoute:
        """One route's ``names``, ``rename`` and ``never`` (also a ``--map`` file's)."""
        spec = self.mapping(node, key_path)
        spec.only(PROMOTE_KEYS)
        rename: dict[str, str] = {}
        if "rename" in spec.items:
            table = self.mapping(spec.items["rename"][1], spec.sub("rename"))
            for old, (old_key, new_node) in table.items.items():
                self.secret_name(old_key, table.sub(old))
                rename[old] = self.secret_name(new_node, table.sub(old))
            targets = list(rename.values())
            for old, new in rename.items():
                if targets.count(new) > 1:
                    problem = f"two names are renamed to '{new}'"
                    raise self.error(table.items[old][0], table.sub(old), problem)
        return PromotionRoute(
            "", "",
            tuple(spec.get("names", self.globs, [])),
            rename,
            tuple(spec.get("never", self.globs, [])),
            line_of(node),
        )  # fmt: skip

    def secret_name(self, node: Node, key_path: str) -> str:
        text = self.string(node, key_path)
        try:
            validate_name(text)
        except InvalidName as exc:
            raise self.error(node, key_path, exc.message, exc.hint) from None
        return text

    def globs(self, node: Node, key_path: str) -> list[str]:
        """A list of secret names or globs (``*``, ``?``, ``[...]``)."""
        if shape(node) != "sequence":
            raise self.wrong_type(node, key_path, "a list of names or globs")
        out = []
        for index, item in enumerate(node.value):
            text = self.string(item, f"{key_path}[{index}]")
            try:
                validate_name(re.sub(r"[*?\[\]]", "x", text))
            except InvalidName as exc:
                raise self.error(item, f"{key_path}[{index}]", exc.message, exc.hint) from None
            out.append(text)
        return out

    def offline(self, node: Node, key_path: str) -> dict[str, str]:
        """``offline: {max_stale: 24h}``: a remote environment's reads fall back to the last
        values read while it is unreachable (backends/offline.py)."""
        section = self.mapping(node, key_path)
        section.only(("max_stale",))
        return {"max_stale": section.require("max_stale", self.duration)}

    def audit(self, node: Node, key_path: str) -> str | None:
        """``audit: {retention: 365d}``: how long events stay in the live log."""
        section = self.mapping(node, key_path)
        section.only(("retention",))
        return section.opt("retention", self.duration)

    def metrics(self, node: Node, key_path: str) -> bool:
        """``metrics: {names: true}``: secrets' names as a metrics label (off by default)."""
        section = self.mapping(node, key_path)
        section.only(("names",))
        return bool(section.get("names", self.boolean, False))

    def duration(self, node: Node, key_path: str) -> str:
        text = self.string(node, key_path)
        try:
            parse_duration(text)
        except UsageError as exc:
            raise self.error(node, key_path, exc.message, exc.hint) from None
        return text

    def version(self, node: Node, key_path: str) -> int:
        self.typed(node, key_path, "int", "an integer")
        version = yaml_int(node)
        if version is None:  # past 18 digits
            raise self.error(node, key_path, f"must be {PROFILE_VERSION}")
        if version > PROFILE_VERSION:
            raise ProfileError(
                self.shown,
                line_of(node),
                key_path,
                f"the profile is version {version}, written by a newer bsecrets "
                f"(this one reads version {PROFILE_VERSION})",
                hint="upgrade bsecrets",
                step=NextStep("upgrade_bsecrets"),
            )
        if version != PROFILE_VERSION:
            raise self.error(node, key_path, f"must be {PROFILE_VERSION}")
        return version

    def environment(self, name: str, key_node: Node, node: Node) -> EnvironmentConfig:
        key_path, line = f"environments.{name}", line_of(key_node)
        if not re.fullmatch(ENV_NAME_PATTERN, name):
            raise self.error(line, key_path, "invalid environment name", ENV_NAME_HINT)
        env = self.mapping(node, key_path, line)
        backend = env.require("backend", self.string)
        if backend not in BACKENDS:
            where = env.items["backend"][1]
            raise self.error(where, f"{key_path}.backend", f"must be one of {', '.join(BACKENDS)}")
        others = [key for keys in BACKEND_KEYS.values() for key in keys]
        provision_entry = env.items.pop("provision", None)  # any backend; read below
        rotation_entry = env.items.pop("rotation", None)  # any backend; read below
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
            options["offline"] = env.opt("offline", self.offline)
        elif backend == "aws":
            options["region"] = env.opt("region", self.string)
            options["prefix"] = env.get("prefix", self.string, "")
            options["kms_key_id"] = env.opt("kms_key_id", self.string)
            options["role_arn"] = env.opt("role_arn", self.arn)
            options["endpoint_url"] = env.opt("endpoint_url", self.url)
            options["insecure_http"] = env.opt("insecure_http", self.boolean)
            options["timeout"] = env.opt("timeout", self.seconds)
            options["offline"] = env.opt("offline", self.offline)
        options = {key: value for key, value in options.items() if value is not None}
        provision: dict[str, tuple[str, str | int | None]] = {}
        if provision_entry is not None:
            provision = self.provision(provision_entry[1], f"{key_path}.provision")
        rotation: dict[str, dict[str, Any]] = {}
        if rotation_entry is not None:
            rotation = self.rotation(rotation_entry[1], f"{key_path}.rotation")
        return EnvironmentConfig(name, backend, options, protected, line, provision, rotation)

    def rotation(self, node: Node, key_path: str) -> dict[str, dict[str, Any]]:
        """``rotation:`` name glob -> policy (docs/rotation.md), kept as written once valid."""
        table = self.mapping(node, key_path)
        out: dict[str, dict[str, Any]] = {}
        for glob, (_key_node, value_node) in table.items.items():
            sub = table.sub(glob)
            spec = self.mapping(value_node, sub)
            spec.only(ROTATION_KEYS)
            policy: dict[str, Any] = {
                "max_age": spec.opt("max_age", self.duration),
                "strategy": spec.get("strategy", self.strategy, "immediate"),
                "overlap": spec.opt("overlap", self.duration),
                "generate": spec.opt("generate", self.generator),
                "retries": spec.get("retries", self.retries, 0),
                "backoff": spec.opt("backoff", self.duration),
                "hooks": spec.opt("hooks", self.hooks),
            }
            out[glob] = {k: v for k, v in policy.items() if v is not None}
        return out

    def strategy(self, node: Node, key_path: str) -> str:
        text = self.string(node, key_path)
        if text not in STRATEGIES:
            raise self.error(node, key_path, f"must be one of {', '.join(STRATEGIES)}")
        return text

    def generator(self, node: Node, key_path: str) -> str:
        text = self.string(node, key_path)
        try:
            parse_generator(text)
        except ValueError as exc:
            raise self.error(node, key_path, str(exc), GENERATOR_HINT) from None
        return text

    def retries(self, node: Node, key_path: str) -> int:
        self.typed(node, key_path, "int", "a whole number from 0 to 10")
        value = yaml_int(node)
        if value is None or not 0 <= value <= 10:
            raise self.error(node, key_path, "must be a whole number from 0 to 10")
        return value

    def hooks(self, node: Node, key_path: str) -> dict[str, list[str]]:
        """``hooks: {set: CMD, test: CMD, finish: CMD}``: CMD a list of arguments, or one
        string run by /bin/sh -c."""
        section = self.mapping(node, key_path)
        section.only(HOOK_STEPS)
        out: dict[str, list[str]] = {}
        for step, (_k, value) in section.items.items():
            out[step] = self.command(value, section.sub(step))
        return out

    def command(self, node: Node, key_path: str) -> list[str]:
        """A command: a list of arguments, or one string run by /bin/sh -c."""
        if shape(node) == "sequence":
            argv = [self.string(item, key_path) for item in node.value]
            if not argv:
                raise self.error(node, key_path, "must not be empty")
            return argv
        return ["/bin/sh", "-c", self.string(node, key_path)]

    def break_glass(self, node: Node, key_path: str) -> list[str]:
        """``break_glass: {notify: CMD}``: told of every break-glass step (JSON on stdin)."""
        section = self.mapping(node, key_path)
        section.only(("notify",))
        empty: list[str] = []
        return section.get("notify", self.command, empty)

    def provision(self, node: Node, key_path: str) -> dict[str, tuple[str, str | int | None]]:
        """``provision:`` name -> generator (see bsecrets.config.generators)."""
        table = self.mapping(node, key_path)
        out: dict[str, tuple[str, str | int | None]] = {}
        for name, (key_node, value_node) in table.items.items():
            sub = table.sub(name)
            try:
                validate_name(name)
            except InvalidName as exc:
                raise self.error(key_node, sub, "invalid secret name", exc.hint) from None
            if shape(value_node) == "mapping":
                spec = self.mapping(value_node, sub)
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
        auth = self.mapping(node, key_path)
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

    def auth_reader(self, key: str) -> ValueReader[str]:
        if key.endswith("_env"):
            return self.env_var
        return self.stripped if key == "mount" else self.string
