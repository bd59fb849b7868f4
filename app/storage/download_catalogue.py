"""The known-good models offered for download, and the text the CLI and the dialog show for
them and for a running download. Data and formatting only: no network, no Qt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.storage.downloads import DownloadProgress


@dataclass(frozen=True)
class CatalogueEntry:
    """A model we know works with this app. ``size`` is approximate (the hub's listing gives the
    exact bytes at download time); ``sha256`` maps a file to its published hash where a public
    source records one; every hub weight file is also checked against the hub's own LFS SHA256."""

    key: str
    title: str
    repo_id: str
    inpainting: bool
    licence: str
    size: int
    filename: str | None = None  # a single-file checkpoint in the repo; None = the diffusers layout
    sha256: dict[str, str] = field(default_factory=dict)
    note: str = ""


GB = 1_000_000_000
CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry("sd15-inpainting", "Stable Diffusion 1.5 Inpainting (RunwayML)",
                   "stable-diffusion-v1-5/stable-diffusion-inpainting", True, "CreativeML OpenRAIL-M", int(2.2 * GB),
                   note="the reference 9-channel inpainting model"),
    CatalogueEntry("sd15", "Stable Diffusion 1.5 (base)", "stable-diffusion-v1-5/stable-diffusion-v1-5", False,
                   "CreativeML OpenRAIL-M", int(2.2 * GB), note="img2img; inpaints by latent blending"),
    CatalogueEntry("sd15-single-fp16", "Stable Diffusion 1.5 (base), one fp16 file",
                   "Comfy-Org/stable-diffusion-v1-5-archive", False, "CreativeML OpenRAIL-M", int(2.13 * GB),
                   filename="v1-5-pruned-emaonly-fp16.safetensors",
                   sha256={"v1-5-pruned-emaonly-fp16.safetensors":
                           "e9476a13728cd75d8279f6ec8bad753a66a1957ca375a1464dc63b37db6e3916"},
                   note="the original single-checkpoint layout"),
    CatalogueEntry("dreamshaper-8-inpainting", "DreamShaper 8 Inpainting", "Lykon/dreamshaper-8-inpainting", True,
                   "CreativeML OpenRAIL-M", int(2.2 * GB), note="a popular fine-tune, good on photos and art"),
)


def catalogue_entry(key: str) -> CatalogueEntry | None:
    return next((e for e in CATALOGUE if e.key == key), None)


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "time left unknown"
    seconds = int(seconds + 0.5)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m left"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s left"
    return f"{seconds}s left"


def format_progress(p: DownloadProgress) -> str:
    """``312.4 MB / 2.1 GB (14%) · 8.2 MB/s · 3m41s left · unet/…`` (or "verifying …")."""
    if p.phase == "verifying":
        return f"verifying {p.current} (SHA256)"
    share = f" ({100 * p.done / p.total:.0f}%)" if p.total else ""
    return (f"{format_bytes(p.done)} / {format_bytes(p.total)}{share} · {format_bytes(p.rate)}/s · "
            f"{format_duration(p.eta)} · {p.current}")


def describe_entry(entry: CatalogueEntry) -> str:
    use = "inpainting" if entry.inpainting else "base (img2img)"
    sha = "SHA256 published" if entry.sha256 else "SHA256 from the hub"
    return f"{entry.title} — {use}, about {format_bytes(entry.size)}, {entry.licence}, {sha}"
