"""Fetching a link on a user's behalf, bounded and safe: the page becomes a file of the library.

A fetch is a request the server makes for whoever sent the URL, so it is held to what a browser on the
open internet could reach: http and https only; every address the host name resolves to must be a
public one (not loopback, private, link-local, multicast or reserved) unless `allowed_fetch_hosts`
names the host (an intranet wiki); the connection goes to the address that was checked (a second DNS
answer cannot point it elsewhere); redirects are followed `MAX_REDIRECTS` times, each hop checked the
same way; the whole fetch has a time limit (`fetch_timeout`) and a size limit (`max_fetch_mb`), both
enforced while reading. Every refusal is a `FetchError` whose message says why and what to do.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from ..config import Config

MAX_REDIRECTS = 5
USER_AGENT = "Mozilla/5.0 (compatible; SellerAssistant/1.0; +reads one article for its library)"
# What a fetched page is stored as: the same readers as a saved file then read it.
SUFFIXES = {"text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt",
            "text/markdown": ".md", "application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg",
            "image/webp": ".webp"}
MAX_URL_CHARS = 2000


class FetchError(ValueError):
    """A URL that was not fetched; str() says why and what to do."""


@dataclass
class Fetched:
    url: str  # the URL asked for
    final_url: str  # where the redirects led
    suffix: str  # ".html", ".pdf", …
    data: bytes


def fetch(url: str, config: Config) -> Fetched:
    """The page at `url` (following redirects), or FetchError."""
    url = url.strip()
    deadline = time.monotonic() + config.fetch_timeout
    limit = int(config.max_fetch_mb * 1_000_000)
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        parts, address = _checked(current, config)
        status, headers, body = _get(parts, address, deadline, limit, config.fetch_timeout)
        if status in (301, 302, 303, 307, 308):
            location = headers.get("location")
            if not location:
                raise FetchError(f"the server answered {status} without saying where to; open the link in a browser")
            current = urljoin(current, location)
            continue
        if status != 200:
            raise FetchError(f"the server answered HTTP {status}; check the link opens in a browser")
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        suffix = SUFFIXES.get(kind)
        if suffix is None:
            raise FetchError(f"the link is not a web page, PDF or picture (it is {kind or 'of no stated type'}); "
                             "download it and upload the file")
        return Fetched(url, current, suffix, body)
    raise FetchError(f"more than {MAX_REDIRECTS} redirects; give the link the browser ends up at")


def _checked(url: str, config: Config) -> tuple:
    """(the URL's parts, the address to connect to) when `url` may be fetched, else FetchError."""
    if len(url) > MAX_URL_CHARS:
        raise FetchError(f"the link is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise FetchError(f"not a valid link ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"only http and https links can be added, not {parts.scheme or 'a bare path'}:")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise FetchError("the link has no host name")
    if not host.isprintable() or any(c.isspace() for c in host):
        raise FetchError(f"the host name {host!r} holds a control character or a space; check the link")
    if parts.username or parts.password:
        raise FetchError("links with a user name or password in them are not fetched")
    allowed = {h.strip().lower() for h in config.allowed_fetch_hosts}
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:  # ValueError: a NUL the checks above missed
        raise FetchError(f"the host name {host!r} could not be resolved ({exc}); check the link") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        if host in allowed or str(address) in allowed:
            continue
        carried = _carried(address)  # judged as the IPv4 address it carries, which is where it leads
        if carried is not None:
            if carried.is_global or str(carried) in allowed:
                continue  # every form of an allowed address alike (::ffff:127.0.0.1 is not "global" itself)
            raise FetchError(f"{host} ({address}) carries the IPv4 address {carried}, a {_kind(carried)} address; "
                             "links to this machine or the internal network are refused unless allowed_fetch_hosts "
                             "names the host")
        if not address.is_global:
            raise FetchError(f"{host} is a {_kind(address)} address ({address}); links to this machine or the "
                             "internal network are refused unless allowed_fetch_hosts names the host")
    return parts, addresses[0]


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _carried(address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address embeds (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64
    64:ff9b::/96, 6to4 2002::/16, Teredo's client), which is where a packet to it may end up."""
    if address.version == 4:
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if (address.packed[:12] == bytes(12) and int(address) > 1) or address in _NAT64:  # :: and ::1 are IPv6's own
        return ipaddress.IPv4Address(address.packed[12:])
    return None


def _kind(address) -> str:
    for name in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(address, f"is_{name}"):
            return name.replace("_", "-")
    return "non-public"


class _Pinned:
    """Connect to the address that was checked, whatever the name resolves to by now."""

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self.pinned), self.port), self.timeout)
        if isinstance(self, http.client.HTTPSConnection):
            self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


class _HTTP(_Pinned, http.client.HTTPConnection):
    pass


class _HTTPS(_Pinned, http.client.HTTPSConnection):
    pass


def _get(parts, address, deadline: float, limit: int, timeout: float) -> tuple[int, dict, bytes]:
    """One request, all of it (connecting, the status line and headers, the body) ended at `deadline`: a
    socket's own timeout only bounds each read, and a server sending a byte at a time would never trip it."""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    left = max(0.1, deadline - time.monotonic())
    connection = (_HTTPS(parts.hostname, port, timeout=left, context=ssl.create_default_context()) if https
                  else _HTTP(parts.hostname, port, timeout=left))
    connection.pinned = address
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    expired = threading.Event()

    def expire() -> None:  # from the timer's thread: what is blocked reading the socket returns at once
        expired.set()
        if connection.sock is not None:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(left, expire)
    timer.daemon = True
    timer.start()
    try:
        connection.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                                                 "Accept": "text/html,application/xhtml+xml,application/pdf,text/*,"
                                                           "image/png,image/jpeg,image/webp"})
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        if response.status != 200:
            return response.status, headers, b""
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise FetchError(f"the page is {int(length) / 1e6:.1f} MB, more than max_fetch_mb "
                             f"({limit / 1e6:g} MB)")
        chunks, size = [], 0
        while chunk := response.read1(65536):  # what has arrived: the deadline is checked between reads
            size += len(chunk)
            if size > limit:
                raise FetchError(f"the page is larger than max_fetch_mb ({limit / 1e6:g} MB)")
            if time.monotonic() > deadline:
                raise FetchError(f"the page took longer than fetch_timeout ({timeout:g} s) to download")
            chunks.append(chunk)
        if expired.is_set():  # the body ended because the socket was shut at the deadline
            raise FetchError(f"the page took longer than fetch_timeout ({timeout:g} s) to download")
        return response.status, headers, b"".join(chunks)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError) or "timed out" in str(exc):
            raise FetchError(f"no complete answer within fetch_timeout ({timeout:g} s); try again later") from None
        raise FetchError(f"the page could not be fetched ({type(exc).__name__}: {exc}); check the link") from None
    finally:
        timer.cancel()
        connection.close()
