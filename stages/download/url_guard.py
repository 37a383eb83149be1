"""Which URLs the downloader may fetch: http(s) only, and no private address unless allowed (SSRF guard).

The check resolves the host and refuses it when any address it resolves to is loopback, private,
link-local, multicast, reserved or unspecified. ``allow_loopback`` lets tests and the demo fetch
from 127.0.0.1 / ::1; ``allow_private`` lifts the guard entirely (trusted internal mirrors).
``deny`` names networks refused whatever the flags say (a mirror's admin range; the tests use it to
make a second loopback address forbidden while the test server itself is allowed).
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from dataclasses import dataclass

ALLOWED_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class UrlPolicy:
    """What the downloader may reach."""

    allow_loopback: bool = False
    allow_private: bool = False
    max_url_length: int = 4096
    deny: tuple[str, ...] = ()


def address_refusal(addr: str, policy: UrlPolicy) -> str | None:
    """Why ``addr`` (an IP address string) may not be reached, or None if it may."""
    return _blocked(ipaddress.ip_address(addr.split("%")[0]), policy)


def _blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, policy: UrlPolicy) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in ipaddress.ip_network(net, strict=False) for net in policy.deny):
        return "denied (download.deny_networks)"
    if ip.is_loopback:
        return None if (policy.allow_loopback or policy.allow_private) else "loopback"
    if policy.allow_private:
        return None
    for attr in ("is_link_local", "is_multicast", "is_unspecified", "is_reserved", "is_private"):
        if getattr(ip, attr):
            return attr[3:].replace("_", "-")
    return None


def check_url(url: str | None, policy: UrlPolicy, unresolvable_ok: bool = False) -> str | None:
    """Return None if ``url`` may be fetched, else the reason it is refused (for the ledger).

    Args:
        url: the URL as given (any scheme; the scheme is compared case-insensitively).
        policy: which addresses may be reached.
        unresolvable_ok: a host that does not resolve is not a refusal (redirect checks leave that
            failure to the connection, which reports it as a download failure).
    """
    if not url or not isinstance(url, str):
        return "empty url"
    if len(url) > policy.max_url_length:
        return f"url longer than {policy.max_url_length} characters"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as err:
        return f"malformed url: {err}"
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        return f"scheme {parts.scheme or '(none)'!r} not allowed (only http, https)"
    host = parts.hostname
    if not host:
        return "url has no host"
    try:
        infos = socket.getaddrinfo(host, parts.port or 80, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError) as err:
        return None if unresolvable_ok else f"cannot resolve host {host!r}: {err}"
    for info in infos:
        addr = info[4][0].split("%")[0]
        reason = _blocked(ipaddress.ip_address(addr), policy)
        if reason:
            return f"refused: {host} resolves to a {reason} address ({addr}); see download.allow_loopback"
    return None


def normalize_url(url: str) -> str:
    """Percent-encode what urllib cannot send as is (spaces, non-ASCII path/query), IDNA-encode the host."""
    parts = urllib.parse.urlsplit(url.strip())
    host = parts.hostname or ""
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    if parts.username:
        netloc = f"{parts.username}{':' + parts.password if parts.password else ''}@{netloc}"
    path = urllib.parse.quote(parts.path, safe="/%:@!$&'()*+,;=-._~")
    query = urllib.parse.quote(parts.query, safe="=&%:@!$'()*+,;/?-._~")
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, ""))
