"""callbackUrl checks: its shape when a payment is created, its address when we send.

At create time only the shape is checked (http or https, a host, no credentials): DNS
answers change, so checking the address then proves nothing about the address later.

At send time `pin` resolves the host once, refuses non-global addresses (`not ip.is_global`,
IPv4-mapped / 6to4 / Teredo IPv6 unwrapped) unless `callbacks.allow_private_urls`, and returns a
request target pinned to the address it checked: the URL names the IP, the Host header and the
TLS server name (SNI, used for certificate verification) keep the original host name. So the
address checked is the address connected to, and a DNS answer that changes between check and
connect (rebinding) cannot slip through. Pinned HTTPS requests ask for `Connection: close`: a
pooled TLS connection is keyed by IP, and reusing one opened for another host's name on a
shared (CDN) IP would send this host's callback over the wrong TLS session.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

import httpx

from watcher.errors import InvalidRequest

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeCallbackUrl(Exception):
    """The callback URL resolves to no address we may connect to."""


def validate_callback_url(url: str) -> str:
    """The callbackUrl as stored, or InvalidRequest naming what is wrong with it."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(
            f"callbackUrl must be an http(s) URL of at most {MAX_URL_LENGTH} characters"
        )
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidRequest("callbackUrl must not contain spaces or control characters")
    parts = _split(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise InvalidRequest("callbackUrl must be an http or https URL")
    if not parts.hostname:
        raise InvalidRequest("callbackUrl must name a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest("callbackUrl must not carry credentials")
    return url


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidRequest("callbackUrl is not a valid URL") from exc
    return SplitResult(parts.scheme.lower(), parts.netloc, parts.path, parts.query, parts.fragment)


def host_key(url: str) -> str:
    """`host:port` of a callback URL: the unit of per-host concurrency."""
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    return f"{(parts.hostname or '').lower()}:{port}"


def effective_address(ip: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped, 6to4 or Teredo IPv6 address; else `ip`."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
    return ip


def is_allowed(ip: IPAddress, allow_private: bool) -> bool:
    return allow_private or effective_address(ip).is_global


@dataclass(frozen=True)
class PinnedTarget:
    """Where one attempt goes: `url` names the checked IP; headers/extensions keep the name."""

    url: httpx.URL
    address: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in resolver order (no DNS for IP literals)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeCallbackUrl(f"cannot resolve {host}: {exc.strerror}") from exc
    return list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))


async def pin(url: str, allow_private: bool) -> PinnedTarget:
    """Resolve the callback URL's host and pin the request to the first allowed address."""
    target = httpx.URL(url)
    if target.scheme not in _DEFAULT_PORTS or not target.host:
        raise UnsafeCallbackUrl("callback URL is not an http(s) URL with a host")
    name = target.raw_host.decode("ascii")  # IDNA-encoded, as DNS and TLS want it
    port = target.port or _DEFAULT_PORTS[target.scheme]
    addresses = await resolve(name, port)
    allowed = [ip for ip in addresses if is_allowed(ip, allow_private)]
    if not allowed:
        shown = ", ".join(str(ip) for ip in addresses) or "nothing"
        raise UnsafeCallbackUrl(
            f"callback host {name} resolves to a non-global address ({shown});"
            " set callbacks.allow_private_urls to allow it"
        )
    ip = allowed[0]
    headers = {"Host": target.netloc.decode("ascii")}
    extensions: dict[str, str] = {}
    if target.scheme == "https":
        headers["Connection"] = "close"
        if not _is_ip_literal(name):
            extensions["sni_hostname"] = name
    return PinnedTarget(target.copy_with(host=str(ip)), str(ip), headers, extensions)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
