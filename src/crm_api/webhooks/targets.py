"""Where webhooks may go: no private, loopback, link-local or otherwise internal addresses
(SSRF), unless `CRM_WEBHOOK_ALLOW_PRIVATE_TARGETS` allows them. Checked when a subscription is
saved and again before every send, on every address the name resolves to then (a name can
start pointing inside after it was saved)."""

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class RefusedTarget(Exception):
    pass


def check_url(url: str) -> str:
    """The URL's host, if the URL is one webhooks can be sent to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedTarget("must be an http or https URL with a host")
    if parts.username or parts.password:
        raise RefusedTarget("must not carry credentials")
    return parts.hostname


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def check_target(url: str, allow_private: bool) -> None:
    """Raises RefusedTarget unless `url` may receive webhooks now."""
    host = check_url(url)
    if allow_private:
        return
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise RefusedTarget(f"the host does not resolve ({error.strerror})") from None
    if any(_internal(str(info[4][0])) for info in found):
        raise RefusedTarget("resolves to a private, loopback or link-local address")
