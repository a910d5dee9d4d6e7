"""callbackUrl: shape at create, address at send (SSRF guard)."""

from __future__ import annotations

import ipaddress

import pytest

from watcher.callbacks.urls import (
    UnsafeCallbackUrl,
    host_key,
    is_allowed,
    pin,
    validate_callback_url,
)
from watcher.errors import InvalidRequest


@pytest.mark.parametrize(
    "url",
    [
        "https://api.site.com/webhook",
        "http://shop.example:8080/kasa?t=1",
        "https://bücher.de/x",
        "https://xn--bcher-kva.de/x",
        "https://hooks.example./x",
        "https://my_shop.example.com/x",
        "http://93.184.216.34/x",
        "http://[2606:2800:220:1:248:1893:25c8:1946]/x",
    ],
)
def test_http_and_https_urls_with_a_host_are_accepted(url: str) -> None:
    assert validate_callback_url(f"  {url} ", allow_private=False) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://a.com/x", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("https:///path", "host"),
        ("https://user:pw@a.com/", "credentials"),
        ("https://a.com:99999/", "not a valid URL"),
        ("https://a.com/a b", "spaces"),
        ("https://a.com/\x07x", "control"),
        ("https://a.com/" + "x" * 2048, "2048"),
        ("", "http(s) URL"),
    ],
)
def test_other_urls_are_invalid_requests(url: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why.replace("(", r"\(").replace(")", r"\)")):
        validate_callback_url(url, allow_private=True)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:169.254.169.254", False),
        ("::ffff:93.184.216.34", True),
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
        # NAT64 prefixes: a translator on the path turns them into any IPv4 address.
        ("64:ff9b::7f00:1", False),  # 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # 169.254.169.254
        ("64:ff9b::5db8:d822", False),  # even a global one: the translator's network decides
        ("64:ff9b:1::a00:1", False),  # local-use NAT64
        # IPv4-compatible (deprecated ::/96): some stacks still reach the IPv4 address.
        ("::127.0.0.1", False),
        ("::93.184.216.34", False),
        # Multicast is never one receiver, and the 6to4 relay anycast is not the merchant.
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("233.252.0.1", False),
        ("ff0e::1", False),
        ("::ffff:224.0.0.1", False),
        ("192.88.99.1", False),
        # `is_global` of Python 3.11 calls these global, yet none is a merchant's server:
        ("fec0::1", False),  # site-local (deprecated, still routed inside networks using it)
        ("::ffff:0:7f00:1", False),  # IPv4-translated (SIIT) 127.0.0.1
        ("::ffff:0:5db8:d822", False),  # ... whichever address it wraps
        ("192.0.0.8", False),  # IETF protocol assignments (only .0/29 and .170/31 in 3.11)
        ("192.0.0.10", False),
    ],
)
def test_only_global_addresses_are_allowed(address: str, allowed: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert is_allowed(ip, allow_private=False) is allowed
    assert is_allowed(ip, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://" + "a" * 64 + ".example/hook",  # a label over 63 characters
        "http://" + ("a" * 60 + ".") * 5 + "example/",  # a name over 253 characters
        "http://a..b.example/",  # an empty label
        "http://xn--/hook",  # punycode that decodes to nothing
        "http://xn--a.example/",  # punycode that is not valid
        "http://0x7f.1/",  # an IP address in a form only inet_aton reads (127.0.0.1)
        "http://2130706433/",  # the same, as one number
        "http://1.2.3.4.5/",  # neither a name nor an address
    ],
)
def test_hosts_that_cannot_be_encoded_or_resolved_are_refused_at_create(url: str) -> None:
    with pytest.raises(InvalidRequest, match="callbackUrl"):
        validate_callback_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://[::1]:8080/x",
        "http://[64:ff9b::7f00:1]/x",
        "http://[::127.0.0.1]/x",
        "http://224.0.0.1/x",
        "http://192.88.99.1/x",
        "http://[::ffff:10.0.0.1]/x",
        "http://[fec0::1]/x",
        "http://[::ffff:0:a00:1]/x",
    ],
)
def test_addresses_we_never_send_to_are_refused_at_create(url: str) -> None:
    with pytest.raises(InvalidRequest, match="non-global"):
        validate_callback_url(url, allow_private=False)
    assert validate_callback_url(url, allow_private=True) == url


async def test_pin_refuses_private_addresses_and_names_them() -> None:
    for url in (
        "http://127.0.0.1:9/x",
        "http://[::ffff:10.0.0.1]/x",
        "http://localhost/x",
        "http://[64:ff9b::7f00:1]/x",
        "http://[::127.0.0.1]/x",
        "http://224.0.0.1/x",
        "http://192.88.99.1/x",
        "http://0x7f.1/x",
    ):
        with pytest.raises(UnsafeCallbackUrl, match="non-global"):
            await pin(url, allow_private=False)


async def test_pin_targets_the_checked_address_and_keeps_the_name_for_host_and_tls() -> None:
    plain = await pin("http://localhost:8080/kasa?x=1", allow_private=True)
    assert plain.address in ("127.0.0.1", "::1")
    assert plain.url.host == plain.address and plain.url.port == 8080
    assert plain.url.raw_path == b"/kasa?x=1"
    assert plain.headers == {"Host": "localhost:8080"} and plain.server_name is None
    tls = await pin("https://localhost/kasa", allow_private=True)
    assert tls.server_name == "localhost"
    assert tls.headers == {"Host": "localhost", "Connection": "close"}


def test_host_key_includes_the_default_port() -> None:
    assert host_key("https://Shop.Example/x") == "shop.example:443"
    assert host_key("http://shop.example:8080/x") == "shop.example:8080"
