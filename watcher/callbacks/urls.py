"""callbackUrl checks: its shape when a payment is created, its address when we send.

At create time the URL's shape (http or https, a host, no credentials) and its host are
checked: a name no resolver could take (a label over 63 characters, a name over 253, an
empty label, punycode that does not decode, a number that only inet_aton reads as an
address) and an address literal we would never send to are refused. Names are not looked
up: DNS answers change, so an address checked then proves nothing about the address later.

At send time `pin` resolves the host once, refuses addresses that are not one merchant's
server (see `is_allowed`) unless `callbacks.allow_private_urls`, and returns a
request target pinned to the address it checked: the URL names the IP, the Host header and the
TLS server name (SNI, used for certificate verification) keep the original host name. So the
address checked is the address connected to, and a DNS answer that changes between check and
connect (rebinding) cannot slip through. A pinned HTTPS connection is never reused (the
request asks for `Connection: close` and the sender closes it after the answer): a pooled
connection is found by IP, and reusing one opened for another host's name on a shared (CDN)
IP would send this host's callback over a TLS session checked for the other name.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

import httpx
import idna

from watcher.errors import InvalidRequest

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}

MAX_NAME_LENGTH = 253
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LABEL = re.compile(r"[a-z0-9_-]{1,63}", re.IGNORECASE)
# A last label that is a number: inet_aton reads `0x7f.1` or `2130706433` as an address.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)

# Global by `is_global` (Python 3.11's tables), yet no merchant's server: NAT64 prefixes and
# IPv4-translated addresses (a translator on the path maps them onto any IPv4 address,
# private ones included), IPv4-compatible addresses (deprecated; some stacks still reach the
# IPv4 address inside), the 6to4 relay anycast, IETF protocol assignments, and site-local
# addresses (deprecated, still routed inside the networks that use them).
_REFUSED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "::ffff:0:0:0/96",
        "::/96",
        "fec0::/10",
        "192.88.99.0/24",
        "192.0.0.0/24",
    )
)


class UnsafeCallbackUrl(Exception):
    """The callback URL resolves to no address we may connect to."""


def validate_callback_url(url: str, *, allow_private: bool) -> str:
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
    _check_host(url, allow_private)
    return url


def _check_host(url: str, allow_private: bool) -> None:
    """The host as the sender will read it (httpx's IDNA encoding) must be one it can use."""
    try:
        host = httpx.URL(url).raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise InvalidRequest("callbackUrl has a host name that cannot be encoded") from exc
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        _check_name(host)
        return
    if not is_allowed(ip, allow_private):
        raise InvalidRequest(
            f"callbackUrl points at a non-global address ({ip}); callbacks are only sent to "
            "public addresses"
        )


def _check_name(host: str) -> None:
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > MAX_NAME_LENGTH or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidRequest(
            "callbackUrl has a host name no resolver accepts (labels of 1 to 63 letters, "
            f"digits, '-' or '_', at most {MAX_NAME_LENGTH} characters in all)"
        )
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise InvalidRequest(
            "callbackUrl host is neither a domain name nor an IP address in standard form"
        )
    for label in labels:
        if label[:4].lower() == "xn--":
            try:
                idna.decode(label)
            except idna.IDNAError as exc:
                raise InvalidRequest(
                    f"callbackUrl has a host name with invalid punycode ({label!r})"
                ) from exc


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
    """Global unicast, after unwrapping, and outside the ranges `is_global` lets through."""
    if allow_private:
        return True
    inner = effective_address(ip)
    if not inner.is_global or inner.is_multicast or ip.is_multicast:
        return False
    return not any(a in net for a in (ip, inner) for net in _REFUSED_NETWORKS)


@dataclass(frozen=True)
class PinnedTarget:
    """Where one attempt goes: `url` names the checked IP; the Host header and the TLS server
    name (SNI, and the name the certificate must be valid for) keep the URL's name."""

    url: httpx.URL
    address: str
    headers: dict[str, str] = field(default_factory=dict)
    server_name: str | None = None  # https to a host name: that name; else the URL's host


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
    except UnicodeError as exc:  # the resolver's IDNA step: an empty or over-long label
        raise UnsafeCallbackUrl(f"cannot resolve {host}: {exc}") from exc
    return list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))


async def pin(url: str, allow_private: bool) -> PinnedTarget:
    """Resolve the callback URL's host and pin the request to the first allowed address."""
    target = _parsed(url)
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
    server_name = None
    if target.scheme == "https":
        headers["Connection"] = "close"
        if not _is_ip_literal(name):
            server_name = name
    return PinnedTarget(_pinned(url, str(ip)), str(ip), headers, server_name)


# Parsing a URL and building its pinned copy took half of pin's 100 µs; a worker sends to the
# same few URLs over and over. (httpx.URL is immutable; the lookup and check of the address
# are done at every attempt.)
@functools.lru_cache(maxsize=4096)
def _parsed(url: str) -> httpx.URL:
    return httpx.URL(url)


@functools.lru_cache(maxsize=4096)
def _pinned(url: str, ip: str) -> httpx.URL:
    return _parsed(url).copy_with(host=ip)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
