"""Man pages from the command tree: bsecrets(1), and one page per command and per
subcommand of a group (bsecrets-get(1), bsecrets-rotate-status(1)), in man(7) roff.

Each page has NAME, SYNOPSIS, DESCRIPTION, OPTIONS (ARGUMENTS and COMMANDS where
there are some), EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES and SEE ALSO. The text is
the commands' own help, so a page says what ``--help`` says, examples included; exit
statuses come from cli/exit_codes.py and variables from config/settings.py, each with
its line below. ``scripts/generate_docs.py`` writes the pages into man/; the tests fail
when man/ is stale, and render each page with ``groff -ww``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer.main
from typer._click.core import Command, Context

from bsecrets import __version__
from bsecrets.cli.app import COMMANDS, app, build_command
from bsecrets.cli.exit_codes import ExitCode
from bsecrets.config import settings
from bsecrets.config.profile import DEFAULT_VAULT_FILE, PROFILE_FILENAME

EXIT_STATUS: dict[ExitCode, str] = {
    ExitCode.OK: "Success.",
    ExitCode.ERROR: "Another error: disk full, a read-only vault, a vault from a newer "
    "bsecrets, an internal error (BSECRETS_DEBUG=1 shows its traceback).",
    ExitCode.USAGE: "Usage: an unknown command or option, a bad name or value, a limit "
    "passed, a bad profile (file:line: key.path: problem); a protected environment "
    "without --reason, or without --yes where no terminal can ask.",
    ExitCode.NOT_FOUND: "Not found: a secret, a version, an environment (the known ones "
    "are listed), the profile, the vault, a principal, a rotation, a promotion.",
    ExitCode.DENIED: "Denied: a locked vault, a wrong passphrase, an invalid or expired "
    "session or token, no grant, a file or folder another user could change, a missing "
    "or wrong one-time code.",
    ExitCode.INTEGRITY: "Integrity: a record, a manifest or the audit log failed "
    "authentication; verify found a problem.",
    ExitCode.UNAVAILABLE: "A backend is unavailable: network, the time budget ran out, "
    "a sealed Vault, server errors or throttling after retries.",
    ExitCode.CONFLICT: "Conflict: an --if-version mismatch, something that exists "
    "already, a rotation or promotion in flight.",
    ExitCode.NOT_EXECUTABLE: "exec: the command cannot be run (otherwise exec exits "
    "with the command's own status, 128+N when signal N killed it).",
    ExitCode.COMMAND_NOT_FOUND: "exec: the command was not found.",
    ExitCode.INTERRUPTED: "Interrupted (Ctrl-C).",
    ExitCode.BROKEN_PIPE: "The reader of the output went away.",
}

# Every variable config/settings.py names (its ENV_* constants), in that order.
ENVIRONMENT: dict[str, str] = {
    settings.ENV_PROFILE: "The profile, as --profile.",
    settings.ENV_ENV: "The environment, as --env (the profile's default_env otherwise).",
    settings.ENV_SESSION: "A session from 'bsecrets unlock': unlocks without a passphrase "
    "until it expires.",
    settings.ENV_PASSPHRASE: "The vault's passphrase.",
    settings.ENV_PASSPHRASE_FILE: "A file (mode 600) or a pipe holding the passphrase.",
    settings.ENV_DEBUG: "1: show the traceback of an error.",
    settings.ENV_NO_FAST: "1: parse every command with the full command-line parser, "
    "where a plain 'get' otherwise takes a shorter way with the same output (a debugging "
    "aid).",
    settings.ENV_NO_COLOR: "Any value: no colour, as --no-color.",
    settings.ENV_MASK: "exec: 1 redacts secret values in the command's output, 0 does "
    "not (default: on when CI is set).",
    settings.ENV_INSECURE_HTTP: "1: as --insecure-http.",
    settings.ENV_JSON: "1: as --json.",
    settings.ENV_REASON: "The reason recorded in the audit log, as --reason.",
    settings.ENV_NEW_PASSPHRASE: "A new passphrase: a new principal's ('bsecrets access "
    "principal add'), or the one 'bsecrets passphrase change' sets.",
    settings.ENV_AS: "The principal to unlock as, as --as.",
    settings.ENV_KEY_FILE: "A principal's key file ('bsecrets access keygen').",
    settings.ENV_TOKEN: "A pipeline token ('bsecrets token issue'): then the only "
    "credential used. Never an option, since the command line is visible.",
    settings.ENV_OTP: "A one-time code, where no terminal can ask for it.",
    settings.ENV_OTEL: "1: OpenTelemetry traces of each operation (the otel extra; "
    "OTEL_* variables as the SDK reads them), 0: none.",
}

FILES: list[tuple[str, str]] = [
    (
        PROFILE_FILENAME,
        "The profile: environments, backends, policies. Searched from the working "
        "folder upward, unless --profile or BSECRETS_PROFILE names one; else "
        "$XDG_CONFIG_HOME/bsecrets/profile.yaml (~/.config/bsecrets/profile.yaml). "
        "It must belong to you (or root) and be writable by nobody else.",
    ),
    (
        DEFAULT_VAULT_FILE,
        "The vault file beside the profile (its vault_file), mode 600: keys, secrets, "
        "the audit log. SQLite, with its -wal and -shm files.",
    ),
    (
        "$XDG_RUNTIME_DIR/bsecrets/sessions/",
        "Session files (mode 600; /run/user/UID, else bsecrets-UID in the temporary "
        "folder, when XDG_RUNTIME_DIR is not set).",
    ),
    (
        "$XDG_CACHE_HOME/bsecrets/profiles/",
        "Parsed profiles (~/.cache/bsecrets/profiles): rebuilt whenever the profile changes.",
    ),
]

MANUAL = "bsecrets manual"


def pages() -> dict[str, str]:
    """File name (``bsecrets-get.1``) -> the page's roff text, for bsecrets(1), every
    command and every subcommand of a group (hidden ones are part of their group's page:
    'rotate NAME' is bsecrets-rotate(1))."""
    root = typer.main.get_command(app)
    root_ctx = Context(root, info_name="bsecrets", **root.context_settings)
    found = {"bsecrets.1": _page(root_ctx, root, [f"bsecrets-{n}" for n in COMMANDS])}
    for name in COMMANDS:
        for ctx in _contexts(build_command(name), name, root_ctx):
            found[f"{_page_name(ctx)}.1"] = _page(ctx, ctx.command, _see_also(ctx))
    return found


def write(folder: Path) -> list[Path]:
    """Write every page into ``folder`` (made if missing); returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in pages().items():
        path = folder / name
        path.write_text(text, encoding="ascii")
        written.append(path)
    return written


def _contexts(command: Command, name: str, parent: Context) -> Iterator[Context]:
    ctx = Context(command, info_name=name, parent=parent)
    yield ctx
    for sub_name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            yield from _contexts(sub, sub_name, ctx)


def _page_name(ctx: Context) -> str:
    return ctx.command_path.replace(" ", "-")


def _see_also(ctx: Context) -> list[str]:
    seen = ["bsecrets"]
    if ctx.parent is not None and ctx.parent.parent is not None:
        seen.append(_page_name(ctx.parent))
    subs = getattr(ctx.command, "commands", {})
    seen += [f"{_page_name(ctx)}-{n}" for n, c in subs.items() if not c.hidden]
    return seen


# --- one page --------------------------------------------------------------------------


def _page(ctx: Context, command: Command, see_also: list[str]) -> str:
    name = _page_name(ctx)
    hidden = [c for c in getattr(command, "commands", {}).values() if c.hidden]
    routed = [Context(c, info_name=c.name, parent=ctx) for c in hidden]
    synopsis, paragraphs = _synopsis_and_description(ctx, command)
    for sub_ctx in routed:
        paragraphs += _paragraphs(sub_ctx.command.help or "")
    out = [
        f'.TH "{_esc(name.upper())}" "1" "" "bsecrets {__version__}" "{MANUAL}"',
        ".nh",  # no hyphenation: option and variable names stay whole
        ".ad l",
        ".SH NAME",
        f"{_esc(name)} \\- {_esc(_summary(command))}",
        ".SH SYNOPSIS",
        ".nf",
        *[_esc(line) for line in synopsis],
        ".fi",
        ".SH DESCRIPTION",
        *_roff_paragraphs(paragraphs),
    ]
    params = [(c, p) for c in [ctx, *routed] for p in c.command.get_params(c)]
    arguments = _definitions(params, "argument")
    if arguments:
        out += [".SH ARGUMENTS", *arguments]
    out += [".SH OPTIONS", *_definitions(params, "option")]
    if ctx.parent is not None:
        out += [".PP", _esc(_global_options_line())]
    commands = [
        [".TP", f".BR {_esc(f'{name}-{sub_name}')} (1)", _esc(_summary(sub)) + "."]
        for sub_name, sub in _subcommands(ctx, command)
    ]
    if commands:
        out += [".SH COMMANDS", *[line for entry in commands for line in entry]]
    out += _common_sections()
    examples = _examples([command, *hidden])
    if examples:
        out += [".SH EXAMPLES", ".RS 4", ".nf", *[_esc(e) for e in examples], ".fi", ".RE"]
    last = len(see_also) - 1
    out += [".SH SEE ALSO"]
    out += [f".BR {_esc(p)} (1){',' if i < last else ''}" for i, p in enumerate(see_also)]
    return "\n".join(out) + "\n"


def _common_sections() -> list[str]:
    """EXIT STATUS, ENVIRONMENT and FILES: the same on every page."""
    out = [".SH EXIT STATUS"]
    for code, meaning in EXIT_STATUS.items():
        out += [".TP", f".B {int(code)}", _esc(meaning)]
    out += [".SH ENVIRONMENT"]
    for variable, meaning in _environment():
        out += [".TP", f".B {_esc(variable)}", _esc(meaning)]
    out += [".SH FILES"]
    for path, meaning in FILES:
        out += [".TP", f".I {_esc(path)}", _esc(meaning)]
    return out


def _subcommands(ctx: Context, command: Command) -> Iterator[tuple[str, Command]]:
    if ctx.parent is None:  # the root: its commands are built on demand
        for name in COMMANDS:
            yield name, build_command(name)
        return
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            yield name, sub


def _summary(command: Command) -> str:
    """The first sentence of the help, without its full stop."""
    text = " ".join((command.short_help or command.help or "").split("\n\n")[0].split())
    first = re.split(r"(?<=\.)\s", text, maxsplit=1)[0]
    return first.rstrip(".")


def _synopsis_and_description(ctx: Context, command: Command) -> tuple[list[str], list[str]]:
    """A group whose help shows its forms (rotate, promote: lines that start with
    'bsecrets ') has them as its synopsis; other commands their usage line."""
    paragraphs = _paragraphs(command.help or "")
    for i, paragraph in enumerate(paragraphs):
        lines = paragraph.splitlines()[1:] if paragraph.startswith("\b\n") else []
        if lines and all(line.startswith("bsecrets ") for line in lines):
            return lines, paragraphs[:i] + paragraphs[i + 1 :]
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    return [usage], paragraphs


def _paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in text.split("\n\n") if p.strip()]


def _roff_paragraphs(paragraphs: list[str]) -> list[str]:
    """Paragraphs filled by groff; one that starts with click's \\b is kept line by line."""
    out: list[str] = []
    for paragraph in paragraphs:
        if paragraph.startswith("\b\n"):
            lines = paragraph.splitlines()[1:]
            out += [".PP", ".RS 4", ".nf", *[_esc(line) for line in lines], ".fi", ".RE"]
        else:
            out += [".PP", _esc(" ".join(paragraph.split()))]
    return out


def _definitions(params: list[tuple[Context, Any]], kind: str) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for ctx, param in params:
        if param.param_type_name != kind or getattr(param, "hidden", False):
            continue
        record = param.get_help_record(ctx)
        if record is None or record[0] in seen:
            continue
        seen.add(record[0])
        names, about = record
        out += [".TP", _bold_names(names), _esc(" ".join(about.split()))]
    return out


def _bold_names(names: str) -> str:
    """``-e, --env ENV``: option names bold, the value's name italic."""
    words = []
    for word in names.split(" "):
        bare = word.rstrip(",")
        if bare == "/":
            words.append(word)
            continue
        font = "B" if bare.startswith("-") else "I"
        words.append(f"\\f{font}{_esc(bare)}\\fR{word[len(bare) :]}")
    return " ".join(words)


def _global_options_line() -> str:
    return (
        "The global options of bsecrets(1) are taken before or after the command, "
        f"with the same meaning: {', '.join(settings.GLOBAL_OPTIONS)}."
    )


def _environment() -> list[tuple[str, str]]:
    """Every variable settings.py names (ENV_*), in its order, with its line."""
    names = [v for k, v in vars(settings).items() if k.startswith("ENV_") and isinstance(v, str)]
    return [(n, ENVIRONMENT.get(n, "(not described yet)")) for n in names]


def _examples(commands: list[Command]) -> list[str]:
    found: list[str] = []
    for command in commands:
        _, marker, tail = (command.epilog or "").partition("Examples:\n")
        for line in tail.splitlines() if marker else []:
            if line.strip() and line.strip() not in found:
                found.append(line.strip())
    return found


_SPECIAL = {
    "\\": "\\e",
    "-": "\\-",
    "'": "\\(aq",
    '"': "\\(dq",
    "`": "\\(ga",
    "~": "\\(ti",
    "^": "\\(ha",
}


def _esc(text: str) -> str:
    """Text for a roff line: backslashes, minus signs (option names copy as typed),
    quotes, and any character outside ASCII as its Unicode escape; a line never starts
    with a control character."""
    out = "".join(_SPECIAL.get(c, c) if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)
    return "\\&" + out if out[:1] in (".", "'") else out
