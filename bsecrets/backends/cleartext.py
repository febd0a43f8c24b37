"""Whether a remote environment is reached without TLS, and the warning that says so.

A Vault or AWS environment whose endpoint is plain ``http://`` to a host other
than this machine sends its token (Vault) or session token (AWS) and every
value across the network in clear text. bsecrets still connects (a lab, a
service mesh that encrypts underneath) but says so once per environment, on
stderr, unless ``--insecure-http`` / ``BSECRETS_INSECURE_HTTP=1`` or the
environment's ``insecure_http: true`` says the network is trusted.

Loopback is 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and the name
``localhost``; any other name counts as remote, since what it resolves to is
not ours to know. Cheap to import: ``urllib.parse`` and ``ipaddress`` load on
the first ``http://`` URL.
"""

from __future__ import annotations

from collections.abc import Iterable

LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104 and ``localhost``; False for any
    other name or address."""
    host = host.lower()
    if host in LOOPBACK_NAMES:
        return True
    import ipaddress

    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone (%eth0)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def cleartext_endpoint(url: str) -> str | None:
    """``http://host[:port]`` when ``url`` is plain HTTP to a host that is not
    loopback, else None. The result never holds the URL's user, password, path
    or query, so it is safe to print."""
    if not url.strip().lower().startswith("http://"):
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if is_loopback(host):
        return None
    try:
        port = parts.port
    except ValueError:
        port = None
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}" + (f":{port}" if port is not None else "")


def cleartext_warning(env: str, endpoints: Iterable[tuple[str, str]]) -> str | None:
    """One line (without ``warning:``) about ``env``'s plain-HTTP endpoints, or None.

    ``endpoints`` are (URL, where it came from) pairs, e.g.
    ``("http://10.0.0.5:8200", "environments.staging.address")``.
    """
    found: dict[str, str] = {}
    for url, source in endpoints:
        shown = cleartext_endpoint(url)
        if shown is not None and shown not in found:
            found[shown] = source
    if not found:
        return None
    where = ", ".join(f"{shown} (from {source})" for shown, source in found.items())
    return (
        f"environment '{env}' talks to {where} without TLS: tokens and values cross "
        f"the network in clear text; use https://, or if the network is trusted, "
        f"pass --insecure-http or set environments.{env}.insecure_http: true"
    )
