"""Where webhooks may go: no private, loopback, link-local or otherwise internal addresses
(SSRF), unless `CRM_WEBHOOK_ALLOW_PRIVATE_TARGETS` allows them. Checked when a subscription is
saved and again before every send, on every address the name resolves to then; and the send
goes to the address that was checked (the URL's host is kept for `Host` and TLS), so a name
that resolves differently a moment later (DNS rebinding) cannot redirect it inside."""

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

# IPv6 ranges that carry an IPv4 address the check must look at: NAT64 (well-known and
# local-use prefixes) and the deprecated IPv4-compatible form; mapped, 6to4 and Teredo
# addresses have accessors of their own.
_EMBEDDING_V4 = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("::/96"),
)


class RefusedTarget(Exception):
    pass


def check_url(url: str) -> str:
    """The URL's host, if the URL is one webhooks can be sent to."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError when out of range)
        host = parts.hostname
        if host:
            host.encode("idna")
    except (ValueError, UnicodeError):
        raise RefusedTarget("is not a valid URL (host or port)") from None
    if parts.scheme not in ("http", "https") or not host:
        raise RefusedTarget("must be an http or https URL with a host")
    if parts.username or parts.password:
        raise RefusedTarget("must not carry credentials")
    return host


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if any(ip in network for network in _EMBEDDING_V4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None and internal(str(embedded)):
            return True
    return not ip.is_global or ip.is_multicast


@dataclass(frozen=True)
class Target:
    """Where to send: the URL, and, when private targets are refused, the checked address
    to connect to."""

    url: str
    host: str
    address: str | None

    def request(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """The URL to connect to, the headers and the request extensions that keep the
        original host for `Host` and TLS (SNI and certificate check)."""
        if self.address is None:
            return self.url, {}, {}
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        netloc = literal + (f":{parts.port}" if parts.port else "")
        pinned = parts._replace(netloc=netloc).geturl()
        host_header = self.host + (f":{parts.port}" if parts.port else "")
        extensions = {"sni_hostname": self.host} if parts.scheme == "https" else {}
        return pinned, {"host": host_header}, extensions


async def check_target(url: str, allow_private: bool) -> Target:
    """Raises RefusedTarget unless `url` may receive webhooks now; returns where to send."""
    host = check_url(url)
    if allow_private:
        return Target(url, host, None)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise RefusedTarget(f"the host does not resolve ({error})") from None
    addresses = [str(info[4][0]) for info in found]
    if not addresses or any(internal(address) for address in addresses):
        raise RefusedTarget("resolves to a private, loopback or link-local address")
    return Target(url, host, addresses[0])


def pinned_request(
    client: httpx.AsyncClient,
    target: Target,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
) -> httpx.Request:
    url, host_headers, extensions = target.request()
    return client.build_request(
        "POST",
        url,
        content=body,
        headers={**headers, **host_headers},
        extensions=extensions,
        timeout=timeout,
    )
