"""Image inputs: a data URI, plain base64, an uploaded file, or an http(s) URL, under rules that
keep a public server from being turned against its own network.

- URLs are fetched only from hosts given with ``--allow-fetch`` (``*`` = any public host);
  a host that resolves to a loopback, private, link-local or otherwise non-public address is
  refused unless it is listed by name. Redirects are not followed (they could point anywhere).
- Every input is capped at 50 MB (the hosted APIs' limit), must be a JPEG, PNG or WebP by its
  first bytes, and goes through the image loader, which enforces its pixel limit before decoding.
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

from app.core.imageio import ImageLoadError, LoadedImage, load_image_bytes
from app.server.errors import ApiError, bad_field

MAX_INPUT_BYTES = 50 * 1024 * 1024
_DATA_URI = re.compile(r"^data:([\w/+.-]*)(;[\w=.-]+)*;base64,", re.IGNORECASE)
_KINDS = "a JPEG, PNG or WebP image"


@dataclass(frozen=True)
class FetchPolicy:
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    timeout_s: float = 10.0
    max_bytes: int = MAX_INPUT_BYTES


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


def decode_image(data: bytes, field_name: str, max_bytes: int = MAX_INPUT_BYTES) -> LoadedImage:
    """Bytes → pixels, after the size cap and the content check."""
    if len(data) > max_bytes:
        raise too_large(field_name, len(data), max_bytes)
    if image_kind(data) is None:
        head = data[:8].hex()
        raise ApiError(400, f"{field_name} is not {_KINDS} (its first bytes are {head or 'empty'})",
                       field_name, f"{len(data)} bytes starting {head}", _KINDS)
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
        return await asyncio.to_thread(decode_image, data, field_name, policy.max_bytes)
    # base64 and pixels on a worker thread: tens of MB would stall every other request on the loop
    return await asyncio.to_thread(lambda: decode_image(decode_base64(text, field_name, policy.max_bytes), field_name,
                                                        policy.max_bytes))


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast)


async def check_url(url: str, field_name: str, policy: FetchPolicy) -> None:
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
        return
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError:
        raise ApiError(400, f"{field_name}: cannot resolve {host}", field_name, url, "a reachable host") from None
    bad = [i[4][0] for i in infos if not _public(i[4][0])]
    if bad:
        raise ApiError(400, f"{field_name}: {host} resolves to the non-public address {bad[0]}; loopback, private "
                            f"and link-local addresses are fetched only when listed with --allow-fetch",
                       field_name, url, "a public host, or one listed with --allow-fetch")


async def fetch_url(url: str, field_name: str, policy: FetchPolicy) -> bytes:
    """GET ``url`` within the policy: no redirects, a timeout, at most ``max_bytes``."""
    await check_url(url, field_name, policy)
    try:
        async with httpx.AsyncClient(timeout=policy.timeout_s, follow_redirects=False, trust_env=False) as client:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise ApiError(400, f"{field_name}: {url} answered HTTP {response.status_code}",
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
        raise ApiError(400, f"{field_name}: {url} did not answer within {policy.timeout_s:g} s",
                       field_name, url, "a URL that answers in time") from None
    except httpx.HTTPError as exc:
        raise ApiError(400, f"{field_name}: cannot fetch {url} ({type(exc).__name__})", field_name, url,
                       "a reachable URL") from None


def mask_from_alpha(image: LoadedImage, field_name: str) -> np.ndarray:
    """OpenAI's convention: fully transparent pixels are the ones to change (255), the rest kept."""
    px = image.pixels
    if px.ndim != 3 or px.shape[2] != 4:
        raise ApiError(400, f"{field_name} has no alpha channel: with the OpenAI edits API the transparent "
                            "pixels mark what to change (send an RGBA PNG)", field_name, "no alpha", "an RGBA PNG")
    return np.where(px[:, :, 3] == 0, 255, 0).astype(np.uint8)
