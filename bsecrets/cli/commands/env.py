"""``bsecrets env add/ls/rm/default/protect/unprotect``: the environments of the profile.

The profile is edited in place (bsecrets.config.edit: comments and order
kept, validated before it is written, atomic). Removing an environment never
deletes remote data; a local environment's secrets go only with
``--purge --yes``, one audited purge per secret through the façade. ``protect``
and ``unprotect`` record a protection in the vault (services/access.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bsecrets.backends.aws.settings import AwsSettings
from bsecrets.backends.vault.config import resolve
from bsecrets.cli.context import JsonOption, YesOption, command_group, obj
from bsecrets.config import edit as profile_edit
from bsecrets.config.cache import load_profile_cached
from bsecrets.config.loader import load_profile
from bsecrets.config.settings import ENV_ENV
from bsecrets.errors import Conflict, ProfileError, UsageError
from bsecrets.services import protection as protections
from bsecrets.services.environments import purge_environment, stored_counts, summaries

app = command_group(
    "env",
    "The profile's environments: add, list, remove, pick the default.\n\n"
    "Examples:\n"
    "  bsecrets env ls\n"
    "  bsecrets env add staging --backend vault --address https://vault:8200 --prefix app/st\n"
    "  bsecrets env default prod\n"
    "  bsecrets env protect prod",
)

# profile key -> the option of 'env add' that sets it
OPTIONS = {
    "address": "--address",
    "mount": "--mount",
    "prefix": "--prefix",
    "namespace": "--namespace",
    "ca_cert": "--ca-cert",
    "auth": "--auth",
    "region": "--region",
    "kms_key_id": "--kms-key-id",
    "role_arn": "--role-arn",
    "endpoint_url": "--endpoint-url",
    "insecure_http": "--insecure-http",
}


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The new environment (a-z 0-9 _ -).")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="local, vault or aws.")],
    protected: Annotated[
        bool, typer.Option("--protected", help="Mark it protected (extra guard rails).")
    ] = False,
    address: Annotated[
        str | None, typer.Option("--address", help="vault: the server URL (else VAULT_ADDR).")
    ] = None,
    mount: Annotated[
        str | None, typer.Option("--mount", help="vault: the KV v2 mount (default: secret).")
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option("--prefix", help="vault (required), aws: where its secrets live."),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="vault: the namespace (Enterprise).")
    ] = None,
    ca_cert: Annotated[
        str | None, typer.Option("--ca-cert", help="vault: a CA file to trust.")
    ] = None,
    auth: Annotated[
        str | None,
        typer.Option("--auth", help="vault: token (default), approle, kubernetes or jwt."),
    ] = None,
    auth_params: Annotated[
        list[str] | None,
        typer.Option(
            "--auth-param",
            help="vault: KEY=VALUE of the auth method (role, token_env, role_id_env, "
            "secret_id_env, jwt_path, mount); repeatable.",
        ),
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="aws: the region (else AWS_REGION).")
    ] = None,
    kms_key_id: Annotated[
        str | None, typer.Option("--kms-key-id", help="aws: the environment's KMS key.")
    ] = None,
    role_arn: Annotated[
        str | None, typer.Option("--role-arn", help="aws: a role to assume.")
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option("--endpoint-url", help="aws: another endpoint.")
    ] = None,
    insecure_http: Annotated[
        bool,
        typer.Option(
            "--insecure-http",
            help="vault, aws: write 'insecure_http: true' (no warning for plain http://).",
        ),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Add an environment to the profile (no network call, no vault change).

    Examples:
      bsecrets env add qa --backend local
      bsecrets env add staging -b vault --address https://vault:8200 --prefix app/staging
      bsecrets env add prod -b aws --region eu-west-1 --prefix app/prod/ --protected
    """
    cli = obj(ctx)
    path = Path(cli.profile_path())
    profile_edit.check_env_name(name)
    profile_edit.check_backend(backend)
    given: dict[str, Any] = {
        "address": address,
        "mount": mount,
        "prefix": prefix,
        "namespace": namespace,
        "ca_cert": _profile_relative(ca_cert, path) if ca_cert else None,
        "region": region,
        "kms_key_id": kms_key_id,
        "role_arn": role_arn,
        "endpoint_url": endpoint_url,
        "insecure_http": True if insecure_http else None,
    }
    if auth is not None or auth_params:
        given["auth"] = _auth(backend, auth, auth_params or [])
    options = {key: value for key, value in given.items() if value is not None}
    allowed = profile_edit.backend_keys(backend)
    for key in options:
        if key not in allowed:
            takes = ", ".join(OPTIONS[k] for k in allowed if k in OPTIONS) or "no options"
            raise UsageError(
                f"{OPTIONS[key]} is not used by backend {backend}",
                hint=f"backend {backend} takes: {takes}" + (", --protected" if allowed else ""),
            )
    try:
        profile = profile_edit.add_environment(
            path, name, backend, options, protected=protected, check=_check_settings
        )
    except ProfileError as exc:
        raise _option_error(exc, name, backend) from None
    config = profile.environment(name)
    if cli.want_json(json_out):
        cli.emit_json(
            {
                "name": name,
                "backend": backend,
                "protected": config.protected,
                "options": dict(config.options),
                "profile": str(profile.path),
            }
        )
        return
    cli.message(f"added environment '{name}' ({backend}) to {profile.path}")
    if backend == "local" and not Path(profile.vault_file).exists():
        cli.message(
            f"there is no vault at {profile.vault_file} yet: 'bsecrets init --force' "
            "creates it and keeps this profile"
        )


def _profile_relative(given: str, profile: Path) -> str:
    """A path typed on the command line (relative to the working folder) as the
    profile reads it (relative to the profile's folder; absolute stays absolute)."""
    expanded = os.path.expanduser(given)
    if os.path.isabs(expanded):
        return given
    return os.path.relpath(os.path.abspath(expanded), profile.parent)


def _auth(backend: str, method: str | None, params: list[str]) -> dict[str, str]:
    if backend != "vault":
        option = "--auth" if method is not None else "--auth-param"
        raise UsageError(
            f"{option} is not used by backend {backend}",
            hint="--auth and --auth-param configure the login to a Vault server",
        )
    method = method or "token"
    keys = profile_edit.auth_keys(method)
    result = {"method": method}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError("--auth-param takes KEY=VALUE", hint="e.g. --auth-param role=myapp")
        if key not in keys:
            raise UsageError(
                f"--auth-param {key[:40]}: not used by auth method {method}",
                hint=f"auth method {method} takes: {', '.join(keys) or 'nothing more'}",
            )
        result[key] = value
    return result


def _check_settings(config: Any) -> None:
    """What a remote backend checks when it starts (a glob in a Vault prefix, a
    prefix AWS cannot use), checked now, with stand-ins for what may come from the
    environment later (VAULT_ADDR, AWS_REGION): no network call."""
    try:
        if config.backend == "vault":
            resolve(config, {"VAULT_ADDR": "https://vault.invalid"})
        elif config.backend == "aws":
            AwsSettings.resolve(config, {"AWS_REGION": "us-east-1"})
    except UsageError as exc:
        base = f"environments.{config.name}."
        if exc.message.startswith(base):
            key, _, rest = exc.message[len(base) :].partition(":")
            exc.message = f"{OPTIONS.get(key, key)}:{rest}"
            exc.args = (exc.message,)
        raise


def _option_error(exc: ProfileError, name: str, backend: str) -> UsageError:
    """A profile error about the new environment, in terms of the options typed."""
    base = f"environments.{name}."
    if not exc.key_path.startswith(base):
        return exc
    keys = exc.key_path[len(base) :].split(".")
    option = OPTIONS.get(keys[0], keys[0])
    if keys[0] == "auth" and len(keys) > 1:
        option = f"--auth-param {keys[1]}"
    if exc.problem == "required key is missing":
        example = f"{option}=VALUE" if option.startswith("--auth-param") else f"{option} VALUE"
        return UsageError(f"backend {backend} needs {option}", hint=exc.hint or f"add {example}")
    return UsageError(f"{option}: {exc.problem}", hint=exc.hint or "see 'bsecrets env add --help'")


@app.command("ls")
def ls(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """The environments: backend, protected, default, and how many secrets each
    local one holds (counted in the vault file without unlocking; remote: '-').

    Examples:
      bsecrets env ls
      bsecrets env ls --json
    """
    cli = obj(ctx)
    profile = load_profile_cached(cli.profile_path())
    counts, problem, protections = stored_counts(Path(profile.vault_file))
    has_local = any(env.backend == "local" for env in profile.environments.values())
    if problem is not None and has_local:
        cli.warn(f"local secrets not counted: {problem.message}")
    rows = summaries(profile, counts, protections)
    if cli.want_json(json_out):
        cli.emit_json([row.to_dict() for row in rows])
        return
    cli.table(
        ["NAME", "BACKEND", "DEFAULT", "PROTECTED", "SECRETS", "WHERE"],
        [
            [
                row.name,
                row.backend,
                "*" if row.default else "",
                row.protected_text(),
                "-" if row.secrets is None else str(row.secrets),
                row.where(),
            ]
            for row in rows
        ],
    )


@app.command("rm")
def rm(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The environment to remove from the profile.")],
    purge: Annotated[
        bool,
        typer.Option("--purge", help="local: first destroy every secret it holds (audited)."),
    ] = False,
    yes: YesOption = False,
    json_out: JsonOption = False,
) -> None:
    """Remove an environment from the profile. Remote data is never deleted; a local
    environment that holds secrets is refused unless --purge --yes destroys them.

    Examples:
      bsecrets env rm qa
      bsecrets env rm scratch --purge --yes
    """
    cli = obj(ctx)
    path = Path(cli.profile_path())
    profile = load_profile(path)
    config = profile.environment(name)  # exit 3, listing the known ones
    profile_edit.check_removable(profile, name)  # refused before anything is purged
    purged = 0
    if config.backend != "local":
        if purge:
            raise UsageError(
                f"--purge applies to local environments; '{name}' is on {config.backend}, "
                "and env rm never deletes data there",
                hint=f"to delete its secrets too, do it first: bsecrets rm NAME --purge -e {name}",
            )
    else:
        held = _held(stored_counts(Path(profile.vault_file)), name)
        if held and not purge:
            raise Conflict(
                f"environment '{name}' holds {held} secret{'s' if held != 1 else ''} "
                "(soft-deleted ones included)",
                hint=f"keep them elsewhere first (bsecrets export -e {name}), or destroy them "
                f"with the environment: bsecrets env rm {name} --purge --yes",
            )
        if held:
            _confirm_purge(name, held, yes)
            purged = purge_environment(cli.manager, name)

    def still_empty(current: Any) -> None:
        if config.backend == "local":
            left = _held(stored_counts(Path(current.vault_file)), name)
            if left:
                raise Conflict(
                    f"environment '{name}' holds {left} secrets again (written meanwhile)",
                    hint=f"run 'bsecrets env rm {name} --purge --yes' again",
                )

    profile_edit.remove_environment(path, name, check=still_empty)
    if cli.want_json(json_out):
        cli.emit_json(
            {"name": name, "backend": config.backend, "purged": purged, "profile": str(path)}
        )
        return
    if purged:
        cli.message(f"purged {purged} secret{'s' if purged != 1 else ''} of '{name}'")
    where = (
        "its key stays in the vault file, with no secrets"
        if config.backend == "local"
        else f"its secrets on {config.backend} were not touched"
    )
    cli.message(f"removed environment '{name}' from {path} ({where})")


def _held(stored: Any, name: str) -> int:
    if stored.counts is None:
        raise stored.problem
    return int(stored.counts.get(name, 0))


def _confirm_purge(name: str, held: int, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"--purge destroys the {held} secret{'s' if held != 1 else ''} of '{name}'; "
            "confirm with --yes",
            hint=f"bsecrets env rm {name} --purge --yes",
        )
    if not typer.confirm(f"Destroy every version of the {held} secrets of '{name}'?", err=True):
        raise typer.Abort()


@app.command("default")
def default(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The environment commands use without -e.")],
    json_out: JsonOption = False,
) -> None:
    """Set the profile's default_env.

    Examples:
      bsecrets env default prod
      bsecrets env default dev --json
    """
    cli = obj(ctx)
    path = Path(cli.profile_path())
    _, previous = profile_edit.set_default_environment(path, name)
    if cli.want_json(json_out):
        cli.emit_json({"default_env": name, "previous": previous, "profile": str(path)})
        return
    if previous == name:
        cli.message(f"'{name}' is already the default environment")
    else:
        cli.message(f"default environment: {name} (was {previous})")
    if cli.settings.environ.get(ENV_ENV):
        cli.warn("BSECRETS_ENV is set: it still wins over the profile's default_env")


@app.command("protect")
def protect(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The environment to protect.")],
    mfa: Annotated[
        str,
        typer.Option(
            "--mfa", metavar="writes|all", help="What needs a one-time code: changes, or all."
        ),
    ] = "writes",
    promote_approval: Annotated[
        bool,
        typer.Option(
            "--promote-approval",
            help="Promotions into it need a second admin: promote --request, promote approve.",
        ),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Protect an environment: its changes (with --mfa all, its reads too) need a
    one-time code, --reason and, where no terminal asks, --yes. Recorded in the vault,
    signed; needs a one-time code itself (enrol first: bsecrets mfa enroll), and on an
    environment already protected (a change of mode) --reason and --yes too.

    Examples:
      bsecrets env protect prod
      bsecrets env protect prod --mfa all --reason "reads audited for SOC 2"
      bsecrets env protect prod --promote-approval
    """
    cli = obj(ctx)
    protection, changed = protections.protect(cli.manager, name, mfa, promote_approval)
    if cli.want_json(json_out):
        cli.emit_json({"env": name, "mfa": protection.mfa, "changed": changed,
                       "promote_approval": protection.promote_approval})  # fmt: skip
        return
    if changed:
        cli.message(f"environment '{name}' is protected (one-time code for: {protection.mfa})")
    else:
        cli.message(f"environment '{name}' was already protected (mfa: {protection.mfa})")


@app.command("unprotect")
def unprotect(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The protected environment.")],
    json_out: JsonOption = False,
) -> None:
    """Lift an environment's protection: as guarded as any change to it (one-time code,
    --reason, --yes where no terminal asks). Refused while the profile declares it
    'protected: true'.

    Examples:
      bsecrets env unprotect staging --reason "no longer shared"
      bsecrets env unprotect staging --reason "no longer shared" --yes --json
    """
    cli = obj(ctx)
    changed = protections.unprotect(cli.manager, name)
    if cli.want_json(json_out):
        cli.emit_json({"env": name, "changed": changed})
        return
    if changed:
        cli.message(f"environment '{name}' is no longer protected")
    else:
        cli.message(f"environment '{name}' was not protected")
