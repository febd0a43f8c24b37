"""A cache of parsed profiles, so that everyday commands skip PyYAML.

Importing PyYAML and walking the node tree cost about 15-20 ms per command
here, a tenth of a whole ``bsecrets get``. The validated profile is kept as
JSON in ``$XDG_CACHE_HOME/bsecrets/profiles`` (0600 in a 0700 folder), keyed
by the profile's absolute path and checked against its size, inode, mtime and
ctime (any write or chmod changes ctime) and HOME (``~`` in paths). On any
mismatch, or any problem with the cache, the profile is parsed again; errors
always come from the real parse, so they keep their file:line.

A cached parse never skips the profile's trust check (bsecrets.config.profile.
check_profile_file): it runs on every load, before the cache is looked at,
since a chmod of a folder above the profile leaves the profile's own
fingerprint unchanged. The cache itself is used only when every folder on its
path is trusted (bsecrets.files.check_trusted_dirs) and the entry is
yours and private; otherwise it is ignored, neither read nor written.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from bsecrets import json_codec
from bsecrets.config.loader import check_profile_file, load_profile
from bsecrets.config.profile import EnvironmentConfig, Profile, PromotionRoute
from bsecrets.errors import InsecureFile
from bsecrets.files import StrPath, check_trusted_dirs, write_private_file

CACHE_FORMAT = 5  # 2: provision; 3: audit retention; 4: promote; 5: break_glass


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "bsecrets", "profiles")


def fingerprint(path: StrPath) -> list[Any] | None:
    """What changes when the profile file does (its size, inode, times); None when it
    cannot be read now. A caller that keeps a parsed profile compares these."""
    try:
        return _fingerprint(os.path.abspath(path))
    except OSError:
        return None


def _fingerprint(path: str) -> list[Any]:
    st = os.stat(path)
    return [
        path, st.st_size, st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns,
        os.environ.get("HOME", ""),
    ]  # fmt: skip


def _to_json(profile: Profile) -> dict[str, Any]:
    return {
        "path": profile.path,
        "version": profile.version,
        "default_env": profile.default_env,
        "vault_file": profile.vault_file,
        "environments": [
            [
                e.name,
                e.backend,
                dict(e.options),
                e.protected,
                e.line,
                dict(e.provision),
                dict(e.rotation),
            ]
            for e in profile.environments.values()
        ],
        "audit_retention": profile.audit_retention,
        "promotions": [[*r[:3], dict(r.rename), *r[4:]] for r in profile.promotions],
        "break_glass_notify": list(profile.break_glass_notify),
    }


def _from_json(data: dict[str, Any]) -> Profile:
    envs = {
        name: EnvironmentConfig(
            name,
            backend,
            options,
            protected,
            line,
            {k: tuple(v) for k, v in provision.items()},
            rotation,
        )
        for name, backend, options, protected, line, provision, rotation in data["environments"]
    }
    return Profile(
        _text(data["path"]),
        data["version"],
        data["default_env"],
        _text(data["vault_file"]),
        envs,
        data["audit_retention"],
        tuple(
            PromotionRoute(source, target, tuple(names), rename, tuple(never), line)
            for source, target, names, rename, never, line in data["promotions"]
        ),
        tuple(data["break_glass_notify"]),
    )


# the largest prime below 2**64: the path's bytes as a number, modulo it, name its entry
_MODULUS = 2**64 - 59


def entry_name(absolute: str) -> str:
    """The cache file of the profile at ``absolute``: its path's bytes as a number modulo
    a 64-bit prime, in C (zlib's or binascii's crc32 is an extension module to load,
    ~0.6 ms of every command). Two paths that share a name only miss: the entry holds
    the path, checked with the rest of the fingerprint."""
    return f"{int.from_bytes(absolute.encode(), 'big') % _MODULUS:016x}.json"


def _text(value: Any) -> str:
    if not isinstance(value, str):  # a damaged entry: parse the profile again
        raise TypeError("not text")
    return value


def load_profile_cached(path: StrPath) -> Profile:
    """Same result and errors as ``load_profile(path)``, usually without parsing YAML."""
    check_profile_file(path)  # every time: a cached parse must not skip it
    absolute = os.path.abspath(path)
    folder = cache_dir()
    try:
        fingerprint = _fingerprint(absolute)
    except OSError:
        return load_profile(path)  # reports the missing or unreadable file
    cache_file = os.path.join(folder, entry_name(absolute))
    try:
        check_trusted_dirs(folder, what="profile cache folder")
    except InsecureFile:
        return load_profile(path)  # someone else could plant or read entries there
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        st = os.stat(cache_file)
        if st.st_uid == os.geteuid() and not st.st_mode & 0o077:
            with open(cache_file, "rb") as fh:
                entry = json_codec.loads(fh.read())
            if entry.get("format") == CACHE_FORMAT and entry.get("fingerprint") == fingerprint:
                return _from_json(entry["profile"])
    profile = load_profile(path)
    with contextlib.suppress(Exception):  # the cache is an optimisation only
        entry = {"format": CACHE_FORMAT, "fingerprint": fingerprint, "profile": _to_json(profile)}
        write_private_file(cache_file, json_codec.dumps(entry).encode())
    return profile
