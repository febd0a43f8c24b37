"""``bsecrets vault ...``: tools for environments on HashiCorp Vault (``backend: vault``)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bsecrets.backends.vault.policy import render_policy
from bsecrets.cli.context import EnvOption, PrincipalOption, command_group, obj
from bsecrets.errors import UsageError
from bsecrets.services import principals

app = command_group(
    "vault",
    "Tools for environments on HashiCorp Vault (backend: vault).\n\n"
    "Examples:\n"
    "  bsecrets vault policy -e staging\n"
    "  bsecrets vault policy -e staging --read-only",
)


@app.command("policy")
def policy(
    ctx: typer.Context,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Only get, ls and history: no writes, no deletes.")
    ] = False,
    env: EnvOption = None,
    principal: PrincipalOption = None,
) -> None:
    """Print the HCL policy that confines a Vault role to the environment's prefix
    (with --principal: to what that principal's grant allows: its role and scope).

    Write it with 'bsecrets vault policy -e ENV | vault policy write NAME -' and
    attach NAME to the AppRole or Kubernetes role of that environment only.

    Examples:
      bsecrets vault policy -e staging | vault policy write myapp-staging -
      bsecrets vault policy -e staging --read-only
      bsecrets vault policy -e staging --principal ci-deploy
    """
    cli = obj(ctx)
    manager = cli.manager
    name = manager.env_name(cli.env(env))
    config = manager.profile.environment(name)
    if config.backend != "vault":
        on_vault = [n for n, c in manager.profile.environments.items() if c.backend == "vault"]
        raise UsageError(
            f"environment '{name}' uses the {config.backend} backend, not vault",
            hint=f"pick one of: {', '.join(on_vault)}"
            if on_vault
            else "no environment of this profile uses backend: vault",
        )

    grant = principals.grant_on(manager, name, principal)
    read_only = read_only or (grant is not None and grant.role == "read")
    only = grant.only if grant is not None else ()
    sys.stdout.write(
        render_policy(name, config.options, read_only=read_only, only=only, principal=principal)
    )
