"""Finding, loading and writing the profile (``bsecrets.yaml``).

What callers may rely on:

* :func:`load_profile` returns a fully validated, frozen
  :class:`~bsecrets.config.profile.Profile`, or raises :class:`ProfileError`
  (exit 2) whose message names the file, the 1-based line and the key path
  (``bsecrets.yaml:12: environments.prod.backend: must be one of local, vault, aws``).
  A missing file raises :class:`ProfileNotFound` (exit 3).
* Unknown keys and duplicate keys are errors, at every level.
* A profile that someone else could have written (another user's file, one
  group or others can write, or one under a folder they can write) is refused
  with InsecureFile (exit 4) by :func:`find_profile` and :func:`load_profile`:
  it names the Vault address and AWS endpoint that tokens and values go to.
* Importing this module is cheap: PyYAML, platformdirs and the parser load on first use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from bsecrets.config.profile import DEFAULT_VAULT_FILE, PROFILE_FILENAME, Profile
from bsecrets.errors import InsecureFile, ProfileError, ProfileNotFound
from bsecrets.files import StrPath, check_trusted_file, tidy

_OWN_PROFILE = "use a profile you own: -p PATH or BSECRETS_PROFILE=PATH"


def find_profile(explicit: str | None, environ: Mapping[str, str], cwd: StrPath) -> str:
    """Return the absolute path of the profile to use.

    Precedence: ``explicit`` (``--profile``), then ``BSECRETS_PROFILE``, then
    ``bsecrets.yaml`` in ``cwd`` or any parent, then
    ``<user config dir>/bsecrets/profile.yaml``. Empty values count as unset.
    Symlinks are not resolved. Raises ProfileNotFound (exit 3), and
    InsecureFile (exit 4) when the profile found could have been written by
    someone else (:func:`check_profile_file`): the search refuses it rather
    than looking further.
    """
    cwd = os.path.abspath(cwd)
    from_env = environ.get("BSECRETS_PROFILE")
    for given, source in ((explicit, "--profile"), (from_env, "BSECRETS_PROFILE")):
        if given:
            path = tidy(os.path.join(cwd, os.path.expanduser(given)))  # as given, if absolute
            try:
                os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                raise ProfileNotFound(f"profile not found: {given} (from {source})") from None
            except OSError:  # e.g. a folder we may not search: reading it reports that
                pass
            return check_profile_file(path, f"from {source}")
    folder = cwd
    while True:  # cwd, then each folder above it up to '/'
        # isfile: False too where a folder on the way may not be searched
        if os.path.isfile(found := os.path.join(folder, PROFILE_FILENAME)):
            return check_profile_file(found, f"found upward from {cwd}")
        if (folder := os.path.dirname(above := folder)) == above:
            break
    import platformdirs

    config = os.path.join(platformdirs.user_config_dir("bsecrets"), "profile.yaml")
    if os.path.isfile(config):
        return check_profile_file(config, "the user config file")
    raise ProfileNotFound(
        f"no profile found (looked for {PROFILE_FILENAME} from {cwd} upward and {config})"
    )


def check_profile_file(path: StrPath, source: str | None = None) -> str:
    """``path``, after refusing (InsecureFile, exit 4) a profile that someone
    else could have written: it must belong to you or root, group and others
    must not be able to write it, and neither any folder above it
    (bsecrets.files.check_trusted_file). ``source`` says where it came from."""
    try:
        check_trusted_file(path, private=False, what="profile", instead=_OWN_PROFILE)
    except InsecureFile as exc:
        if not source:
            raise
        message = exc.message.replace(f"profile {path}", f"profile {path} ({source})", 1)
        raise InsecureFile(message, hint=exc.hint, step=exc.step) from None
    return os.fspath(path)


def load_profile(path: StrPath) -> Profile:
    """Read and validate the profile at ``path``.

    Raises ProfileNotFound (exit 3) when the file does not exist, InsecureFile
    (exit 4) when someone else could have written it (:func:`check_profile_file`)
    and ProfileError (exit 2) for anything else: unreadable, not UTF-8, bad
    YAML, bad schema.
    Messages show ``str(path)`` as given.
    """
    shown = str(path)
    check_profile_file(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ProfileNotFound(f"profile not found: {shown}") from None
    except PermissionError:
        raise ProfileError(shown, None, "", "cannot read the file: permission denied") from None
    except OSError as exc:
        problem = f"cannot read the file: {exc.strerror or exc}"
        raise ProfileError(shown, None, "", problem) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ProfileError(shown, line, "", "the file is not valid UTF-8") from None
    from bsecrets.config.parser import parse_profile  # the seam: PyYAML and the walker, 15-20 ms

    return parse_profile(text, shown, os.path.abspath(path))


def render_profile(
    environments: list[str], default_env: str, vault_file: str = DEFAULT_VAULT_FILE
) -> str:
    """The YAML text ``bsecrets init`` writes: every environment on the local backend.

    Raises UsageError (exit 2) for an invalid or missing environment name.
    :func:`load_profile` accepts the result.
    """
    from bsecrets.config.parser import render  # the seam: see load_profile

    return render(environments, default_env, vault_file)
