"""Secret names -> environment variables, and the environment a child gets.

Pure functions over plain data: no I/O, no manager (``select_names`` is handed
the listing to call). ``exec`` loads the secrets, then ``child_environment``
decides what the child sees; ``export`` shares the selection and the naming.

Rules (docs/exec.md):

- ``--only`` takes names and globs (``select_names``); a glob matching nothing
  is exit 3, as a missing name is;
- a name becomes a variable by upper-casing it and turning every character
  other than ``A-Z 0-9 _`` into ``_`` (``db/password`` -> ``DB_PASSWORD``),
  after ``--prefix``;
- two names that map to one variable are an error naming both;
- secrets override inherited variables, except those in ``--preserve-env``;
- variables that change how programs are found or run (PATH, HOME, LD_*, ...)
  are never overridden unless ``--allow-override NAME``;
- bsecrets' own unlock variables never reach the child, not even from a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping

from bsecrets.config.settings import ENV_PASSPHRASE, ENV_PASSPHRASE_FILE, ENV_SESSION
from bsecrets.errors import NextStep, SecretNotFound, UsageError
from bsecrets.models import validate_name

# Never passed to a child, whatever the options.
WITHHELD = frozenset({ENV_SESSION, ENV_PASSPHRASE, ENV_PASSPHRASE_FILE})

# A secret may set these only with --allow-override NAME: they decide which
# program runs, with which libraries and options, and as whom.
PROTECTED = frozenset(
    {
        "PATH", "HOME", "SHELL", "USER", "LOGNAME", "IFS", "ENV", "BASH_ENV", "CDPATH",
        "PS4", "PWD", "TMPDIR", "GCONV_PATH", "HOSTALIASES",
        "LOCALDOMAIN", "RES_OPTIONS", "NODE_OPTIONS", "NODE_PATH", "PERL5OPT", "PERL5LIB",
        "PERLLIB", "RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
        "GIT_EXEC_PATH", "GIT_SSH", "GIT_SSH_COMMAND", "SSH_AUTH_SOCK", "EDITOR", "VISUAL",
        "PAGER", "SUDO_ASKPASS", "SSH_ASKPASS", "BROWSER",
        # run or load code in an interactive shell that got them (a child shell,
        # or one that sourced 'export -f dotenv/shell'): bash runs PROMPT_COMMAND
        # and $(...) in its prompts (zsh too with PROMPT_SUBST) and in MAILPATH
        # messages, zsh runs NULLCMD for a bare redirection and loads code from
        # FPATH, MODULE_PATH and ZDOTDIR, HISTFILE is written on exit
        "PROMPT_COMMAND", "PS0", "PS1", "PS2", "PS3", "PROMPT", "PROMPT2", "PROMPT3",
        "PROMPT4", "RPROMPT", "RPROMPT2", "RPS1", "RPS2", "SPROMPT", "PROMPT_EOL_MARK",
        "MAILPATH", "NULLCMD", "READNULLCMD", "FPATH", "MODULE_PATH", "ZDOTDIR",
        "BASH_LOADABLES_PATH", "HISTFILE",
    }
)  # fmt: skip
PROTECTED_PREFIXES = ("LD_", "DYLD_", "PYTHON", "XDG_", "BASH_FUNC_", "MALLOC_", "BSECRETS_")

# What --pristine keeps from the inherited environment.
PRISTINE_KEEP = ("PATH", "HOME", "TERM", "LANG")

_OTHER = re.compile(r"[^A-Z0-9_]")
# the patterns of --prefix and --only as text, compiled on first use (re keeps them):
# a plain exec uses none of them, and each compile costs every exec ~0.1 ms
_VALID_PREFIX = r"[A-Za-z_][A-Za-z0-9_]*"
_GLOB = r"[*?\[]"
_PATTERN = r"[A-Za-z0-9_./*?\[\]!-]{1,255}"  # name characters and fnmatch's


def variable_name(name: str, prefix: str = "") -> str:
    """``db/password`` -> ``DB_PASSWORD`` (with ``prefix`` put in front)."""
    return prefix + _OTHER.sub("_", name.upper())


def is_protected(variable: str) -> bool:
    return variable in PROTECTED or variable.startswith(PROTECTED_PREFIXES)


def check_prefix(prefix: str) -> None:
    if prefix and not re.fullmatch(_VALID_PREFIX, prefix):
        raise UsageError(
            f"invalid --prefix {prefix!r}",
            hint="a prefix is letters, digits and '_', not starting with a digit",
        )


def map_names(
    names: Iterable[str],
    prefix: str = "",
    *,
    collision: NextStep | None = None,
    check: Callable[[str, str], None] | None = None,
) -> dict[str, str]:
    """Variable -> secret name, in name order; two names on one variable is a
    UsageError naming both (its next step: ``collision``, by default picking one
    with --only). ``check(name, variable)`` sees each pair, in name order, after
    its collision check."""
    check_prefix(prefix)
    mapping: dict[str, str] = {}
    for name in sorted(names):
        variable = variable_name(name, prefix)
        if variable in mapping:
            raise UsageError(
                f"secrets '{mapping[variable]}' and '{name}' both map to the variable {variable}",
                step=collision or NextStep("rename_or_select_colliding"),
            )
        if check is not None:
            check(name, variable)
        mapping[variable] = name
    return mapping


def select_names(only: Iterable[str], listed: Callable[[], Iterable[str]], env: str) -> list[str]:
    """The secrets ``--only`` picks (exec, export), sorted: each entry is a name, or a
    glob (``*``, ``?``, ``[...]``; fnmatch, case-sensitive, ``*`` also matches ``/``)
    matched against ``listed()``, the live names, which is called only when a glob is
    given. Without ``--only``: every name ``listed()`` gives.

    A name is validated (exit 2) and read later (exit 3 there if missing); a glob
    that matches no secret is SecretNotFound (exit 3) now, so a typo never exports
    or injects nothing with success."""
    wanted = [item.strip() for item in only if item.strip()]
    if not wanted:
        return sorted(listed())
    chosen: set[str] = set()
    patterns: list[str] = []
    for item in wanted:
        if re.search(_GLOB, item):
            if not re.fullmatch(_PATTERN, item):
                shown = item if len(item) <= 60 else item[:57] + "..."
                raise UsageError(
                    f"invalid --only pattern {shown!r}",
                    hint="a pattern is a name with * ? [...] in it (fnmatch)",
                )
            patterns.append(item)
        else:
            chosen.add(validate_name(item))
    if patterns:
        from fnmatch import fnmatchcase

        available = sorted(listed())
        for pattern in patterns:
            matched = [name for name in available if fnmatchcase(name, pattern)]
            if not matched:
                raise SecretNotFound(
                    f"no secret in environment '{env}' matches --only '{pattern}'",
                    step=NextStep("list_secret_names", env=env),
                )
            chosen.update(matched)
    return sorted(chosen)


def _norm(values: Iterable[str]) -> set[str]:
    return {v.strip() for v in values if v.strip()}


def child_environment(
    secrets: Mapping[str, bytes],
    inherited: Mapping[str, str],
    *,
    mapping: Mapping[str, str],
    pristine: bool = False,
    preserve: Iterable[str] = (),
    allow_override: Iterable[str] = (),
) -> tuple[dict[bytes, bytes], list[str]]:
    """The child's environment (bytes, as ``execve`` takes it) and the variables injected.

    ``secrets`` is secret name -> value, ``mapping`` variable -> secret name
    (from ``map_names``). Raises UsageError before anything runs when a secret
    would set a protected or withheld variable, or holds a NUL byte.
    """
    preserved = _norm(preserve)
    allowed = _norm(allow_override)
    if pristine:
        base = {k: inherited[k] for k in PRISTINE_KEEP if k in inherited}
        base.setdefault("PATH", os.defpath)
    else:
        base = {k: v for k, v in inherited.items() if k not in WITHHELD}
    env: dict[bytes, bytes] = {os.fsencode(k): os.fsencode(v) for k, v in base.items()}
    injected: list[str] = []
    for variable, name in sorted(mapping.items()):
        if variable in WITHHELD:
            raise UsageError(
                f"secret '{name}' maps to {variable}, which never reaches a child process",
                step=NextStep("rename_or_leave_out"),
            )
        if variable in preserved and variable in base:
            continue
        if is_protected(variable) and variable not in allowed:
            raise UsageError(
                f"secret '{name}' would override the protected variable {variable}",
                step=NextStep("allow_keep_or_leave_out", variable=variable),
            )
        value = secrets[name]
        if b"\0" in value:
            raise UsageError(
                f"secret '{name}' holds a NUL byte and cannot be an environment variable",
                step=NextStep("leave_out_or_render_to_file", name=name),
            )
        env[variable.encode()] = value
        injected.append(variable)
    return env, injected
