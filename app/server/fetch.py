"""Image inputs: a data URI, plain base64, an uploaded file, or an http(s) URL, under rules that
keep a public server from being turned against its own network.

- URLs are fetched only from hosts given with ``--allow-fetch`` (``*`` = any public host);
  a host that resolves to a loopback, private, link-local or otherwise non-public address is
  refused unless it is listed by name. Redirects are not followed (they could point anywhere).
- A fetch has a total deadline (a host dripping a byte at a time cannot hold it) and at most
  `FETCHES_AT_ONCE` run at once server-wide; routes fetch only once admitted to the queue.
  Refusals name the host, never its port, status code or the first bytes of its answer (a
  client must not use the server to probe what answers where).
- Every input is capped at 50 MB (the hosted APIs' limit), must be a JPEG, PNG or WebP by its
  first bytes, and goes through the image loader, which enforces its pixel limit from the header
  before decoding (`check_header` applies the same budget where the route decodes on its own).
Each refusal is an `ApiError` naming the request field.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import numpy as np


from app.core.imageio import MAX_PIXELS, ImageLoadError, LoadedImage, check_decode_budget, load_image_bytes
from app.server.errors import ApiError, bad_field

MAX_INPUT_BYTES = 50 * 1024 * 1024
#: Image fetches in flight at once, server-wide.
FETCHES_AT_ONCE = 4
#: A fetch's whole time (connect, headers, body), whatever the per-read timeout.
FETCH_DEADLINE_S = 30.0
_DATA_URI = re.compile(r"^data:([\w/+.-]*)(;[\w=.-]+)*;base64,", re.IGNORECASE)
_KINDS = "a JPEG, PNG or WebP image"


@dataclass(frozen=True)
class FetchPolicy:
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    timeout_s: float = 10.0
    max_bytes: int = MAX_INPUT_BYTES
    deadline_s: float = FETCH_DEADLINE_S
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(FETCHES_AT_ONCE), compare=False)


def too_large(field_name: str, size: int, limit: int) -> ApiError:
    return ApiError(413, f"{field_name} is {size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB",
                    field_name, f"{size} bytes", f"at most {limit} bytes")


def image_kind(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _check_kind(data: bytes, field_name: str, max_bytes: int, fetched: bool) -> None:
    if len(data) > max_bytes:
        raise too_large(field_name, len(data), max_bytes)
    if image_kind(data) is None:
        if fetched:  # what some host answered is not ours to relay
            raise ApiError(400, f"{field_name}: the URL did not answer with {_KINDS}", field_name, None, _KINDS)
        head = data[:8].hex()
        raise ApiError(400, f"{field_name} is not {_KINDS} (its first bytes are {head or 'empty'})",
                       field_name, f"{len(data)} bytes starting {head}", _KINDS)


def check_header(data: bytes, field_name: str, max_pixels: int = MAX_PIXELS,
                 max_bytes: int = MAX_INPUT_BYTES) -> tuple[int, int]:
    """The decode budget read from the header alone, the CLI's (`check_decode_budget`: pixels per
    byte, JPEG scans, frames, free memory) plus this route's own pixel cap: what a route that
    decodes by itself checks first, so a 138-byte PNG declaring 60000×60000 costs nothing.
    Returns (width, height)."""
    _check_kind(data, field_name, max_bytes, fetched=False)
    try:
        header = check_decode_budget(data, field_name)
    except ImageLoadError as exc:
        raise ApiError(413, str(exc), field_name, None, f"at most {max_pixels} pixels") from None
    except Exception:  # noqa: BLE001 - any unreadable header
        raise ApiError(400, f"{field_name} cannot be read as an image (damaged or not an image)", field_name,
                       f"{len(data)} bytes", _KINDS) from None
    width, height = header.width, header.height
    if width * height > max_pixels:
        raise ApiError(413, f"{field_name} declares {width}×{height} = {width * height} pixels; the limit is {max_pixels}",
                       field_name, f"{width}×{height}", f"at most {max_pixels} pixels")
    return width, height


def decode_image(data: bytes, field_name: str, max_bytes: int = MAX_INPUT_BYTES, fetched: bool = False) -> LoadedImage:
    """Bytes → pixels, after the size cap and the content check (the loader checks the pixel
    count from the header before it decodes)."""
    _check_kind(data, field_name, max_bytes, fetched)
    try:
        return load_image_bytes(data, field_name, read_metadata=False)  # inputs' own recall data is never used
    except ImageLoadError as exc:
        raise ApiError(400, str(exc), field_name, f"{len(data)} bytes", _KINDS) from None


def decode_base64(text: str, field_name: str, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    match = _DATA_URI.match(text)
    payload = text[match.end():] if match else text
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise too_large(field_name, len(payload) * 3 // 4, max_bytes)
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise bad_field(field_name, text, "a data URI or base64 of " + _KINDS + ", or an http(s) URL") from None


async def image_from_value(value: object, field_name: str, policy: FetchPolicy) -> LoadedImage:
    """A JSON field's image: URL, data URI or base64."""
    if not isinstance(value, str) or not value.strip():
        raise bad_field(field_name, value, "a data URI or base64 of " + _KINDS + ", or an http(s) URL")
    text = value.strip()
    if text.lower().startswith(("http://", "https://")):
        data = await fetch_url(text, field_name, policy)
        return await asyncio.to_thread(decode_image, data, field_name, policy.max_bytes, True)
    # base64 and pixels on a worker thread: tens of MB would stall every other request on the loop
    return await asyncio.to_thread(lambda: decode_image(decode_base64(text, field_name, policy.max_bytes), field_name,
                                                        policy.max_bytes))


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast)


async def check_url(url: str, field_name: str, policy: FetchPolicy) -> str | None:
    """Refuse a URL the policy does not allow; for a host allowed by ``*`` (not by name) return
    the checked public address the fetch must connect to (resolving again could give another:
    DNS rebinding), else None."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise bad_field(field_name, url, "an http(s) URL with a host name")
    listed = host in policy.allow_hosts
    if not listed and "*" not in policy.allow_hosts:
        raise ApiError(400, f"{field_name}: fetching images from {host} is not allowed on this server "
                            f"(start it with --allow-fetch {host}, or send the image as base64)",
                       field_name, url, "a host given with --allow-fetch, or base64 data")
    if listed:
        return None
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError:
        raise ApiError(400, f"{field_name}: cannot resolve {host}", field_name, url, "a reachable host") from None
    bad = [i[4][0] for i in infos if not _public(i[4][0])]
    if bad:
        raise ApiError(400, f"{field_name}: {host} resolves to the non-public address {bad[0]}; loopback, private "
                            f"and link-local addresses are fetched only when listed with --allow-fetch",
                       field_name, url, "a public host, or one listed with --allow-fetch")
    return infos[0][4][0]


def _pinned(url: str, address: str | None) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL, headers, extensions) that reach ``address`` while naming the URL's host in Host and,
    for https, in SNI and the certificate check."""
    if address is None:
        return url, {}, {}
    parts = urlsplit(url)
    literal = f"[{address}]" if ":" in address else address
    netloc = literal + (f":{parts.port}" if parts.port else "")
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl(), {"Host": host}, {"sni_hostname": parts.hostname or ""}


async def fetch_url(url: str, field_name: str, policy: FetchPolicy) -> bytes:
    """GET ``url`` within the policy: no redirects, a per-read timeout and a total deadline, at
    most ``max_bytes``, at most `FETCHES_AT_ONCE` at a time."""
    address = await check_url(url, field_name, policy)
    host = urlsplit(url).hostname
    async with policy.slots:
        try:
            async with asyncio.timeout(policy.deadline_s):
                return await _get(url, field_name, host, policy, address)
        except TimeoutError:
            raise ApiError(400, f"{field_name}: {host} did not send the image within {policy.deadline_s:g} s",
                           field_name, url, "a URL that answers in time") from None


async def _get(url: str, field_name: str, host: str | None, policy: FetchPolicy, address: str | None) -> bytes:
    target, headers, extensions = _pinned(url, address)
    try:
        async with httpx.AsyncClient(timeout=policy.timeout_s, follow_redirects=False, trust_env=False) as client:
            async with client.stream("GET", target, headers=headers, extensions=extensions) as response:
                if response.status_code != 200:
                    raise ApiError(400, f"{field_name}: {host} did not answer with an image",
                                   field_name, url, "a URL that answers 200 with an image")
                declared = int(response.headers.get("content-length") or 0)
                if declared > policy.max_bytes:
                    raise too_large(field_name, declared, policy.max_bytes)
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > policy.max_bytes:
                        raise too_large(field_name, size, policy.max_bytes)
                    chunks.append(chunk)
                return b"".join(chunks)
    except httpx.TimeoutException:
        raise ApiError(400, f"{field_name}: {host} did not answer within {policy.timeout_s:g} s",
                       field_name, url, "a URL that answers in time") from None
    except httpx.HTTPError:
        raise ApiError(400, f"{field_name}: cannot fetch an image from {host}", field_name, url,
                       "a reachable URL") from None


def mask_from_alpha(image: LoadedImage, field_name: str) -> np.ndarray:
    """OpenAI's convention: fully transparent pixels are the ones to change (255), the rest kept."""
    px = image.pixels
    if px.ndim != 3 or px.shape[2] != 4:
        raise ApiError(400, f"{field_name} has no alpha channel: with the OpenAI edits API the transparent "
                            "pixels mark what to change (send an RGBA PNG)", field_name, "no alpha", "an RGBA PNG")
    return np.where(px[:, :, 3] == 0, 255, 0).astype(np.uint8)
