"""``bsecrets vault ...``: tools for environments on HashiCorp Vault (``backend: vault``)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bsecrets.backends.vault.policy import render_policy
from bsecrets.cli.context import EnvOption, command_group, obj
from bsecrets.errors import UsageError

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
) -> None:
    """Print the HCL policy that confines a Vault role to the environment's prefix.

    Write it with 'bsecrets vault policy -e ENV | vault policy write NAME -' and
    attach NAME to the AppRole or Kubernetes role of that environment only.

    Examples:
      bsecrets vault policy -e staging | vault policy write myapp-staging -
      bsecrets vault policy -e staging --read-only
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

    sys.stdout.write(render_policy(name, config.options, read_only=read_only))
