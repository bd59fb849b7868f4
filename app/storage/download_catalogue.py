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
    #: The models folder's sub-folder it goes in, where the app looks for its kind ("" = the root,
    #: "Lora" = `network_files.lora_dirs`, "RealESRGAN"/"GFPGAN" = `restoration.files.FOLDERS`).
    folder: str = ""
    kind: str = ""  # what it is, shown instead of inpainting/base ("LoRA", "upscaler ×4", …)
    url: str | None = None  # one file from a web server (not the hub) instead of ``repo_id``
    #: A torch ``.pth`` only ever read by the restoration loader's weights-only unpickler (no code
    #: can run: docs/ARCHITECTURE.md, "Restoration models"), so it needs no --allow-pickle.
    weights_only: bool = False

    @property
    def page(self) -> str:
        return self.url or f"https://huggingface.co/{self.repo_id}"


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
    # Few-step LoRAs (app.core.few_step recognises them by name and applies their sampler, steps
    # and guidance). A diffusers-layout file goes in a folder named by the key: the <lora:KEY:1> tag.
    CatalogueEntry("lcm-lora-sdv1-5", "LCM-LoRA for SD 1.5", "latent-consistency/lcm-lora-sdv1-5", False,
                   "OpenRAIL++", 134_621_556, filename="pytorch_lora_weights.safetensors",
                   sha256={"pytorch_lora_weights.safetensors":
                           "8f90d840e075ff588a58e22c6586e2ae9a6f7922996ee6649a7f01072333afe4"},
                   folder="Lora", kind="few-step LoRA", note="4–8 steps with the LCM sampler: <lora:lcm-lora-sdv1-5:1>"),
    CatalogueEntry("tcd-sd15-lora", "TCD LoRA for SD 1.5", "h1t/TCD-SD15-LoRA", False, "MIT", int(0.135 * GB),
                   filename="pytorch_lora_weights.safetensors", folder="Lora", kind="few-step LoRA",
                   note="4 steps with the TCD sampler: <lora:tcd-sd15-lora:1>; size approximate"),
    CatalogueEntry("hyper-sd15-8steps", "Hyper-SD 1.5, 8-step LoRA", "ByteDance/Hyper-SD", False, "OpenRAIL++",
                   int(0.269 * GB), filename="Hyper-SD15-8steps-lora.safetensors", folder="Lora",
                   kind="few-step LoRA", note="8 steps with the TCD sampler: <lora:Hyper-SD15-8steps-lora:1>"),
    # Restoration models, in the sub-folders app.inference.restoration.files searches. IOPaint's
    # big-lama.pt is a TorchScript program (refused by the loader); Fooocus publishes big-lama's
    # generator as safetensors (fp16), which is what "big-lama" fetches.
    CatalogueEntry("big-lama", "LaMa (big-lama), Fooocus's safetensors copy", "lllyasviel/fooocus_inpaint", False,
                   "Apache-2.0 (LaMa); the repository's card says OpenRAIL", 102_218_542,
                   filename="fooocus_lama.safetensors",
                   sha256={"fooocus_lama.safetensors":
                           "9cca32dda6b2e8d12d150f4e39087cea44c1fff9d799e71f23b65e7b065f18b2"},
                   folder="LaMa", kind="prompt-free inpainting (LaMa)",
                   note="removes objects and scratches: --model lama; big-lama's weights in fp16"),
    CatalogueEntry("realesrgan-x4plus", "Real-ESRGAN x4plus", "Comfy-Org/Real-ESRGAN_repackaged", False,
                   "BSD-3-Clause", 66_857_836, filename="RealESRGAN_x4plus.safetensors",
                   sha256={"RealESRGAN_x4plus.safetensors":
                           "37f9a931c215f040aa6d50f711f2cb115f713c46df1d0d6469a8bd7bfe9a60bb"},
                   folder="RealESRGAN", kind="upscaler ×4", note="photos; the original .pth repackaged as safetensors"),
    CatalogueEntry("realesrgan-x2plus", "Real-ESRGAN x2plus", "Comfy-Org/Real-ESRGAN_repackaged", False,
                   "BSD-3-Clause", int(0.067 * GB), filename="RealESRGAN_x2plus.safetensors", folder="RealESRGAN",
                   kind="upscaler ×2", note="photos; the original .pth repackaged as safetensors; size approximate"),
    CatalogueEntry("gfpgan-1.4", "GFPGAN 1.4", "TencentARC/GFPGAN", False, "Apache-2.0", int(0.349 * GB),
                   url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
                   sha256={"GFPGANv1.4.pth": "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad"},
                   folder="GFPGAN", kind="face restorer", weights_only=True,
                   note="published only as a .pth: read with torch's weights-only unpickler, its published SHA256 "
                        "checked"),
    CatalogueEntry("ddcolor", "DDColor (ModelScope weights)", "piddnad/DDColor-models", False,
                   "weights Apache-2.0; its architecture's code non-commercial",
                   int(0.912 * GB), filename="ddcolor_modelscope.pth",
                   sha256={"ddcolor_modelscope.pth":
                           "17c460d7e55b32a598370621d77173be59e03c24b0823f06821db23a50c263ce"},
                   folder="DDColor", kind="colouriser (needs spandrel-extra-arches)", weights_only=True,
                   note="colorize; its architecture comes with the optional package spandrel-extra-arches "
                        "(README: Photo restoration); a .pth read weights-only; size approximate"),
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
    use = entry.kind or ("inpainting" if entry.inpainting else "base (img2img)")
    sha = "SHA256 published" if entry.sha256 else "SHA256 from the hub"
    where = f", into {entry.folder}/" if entry.folder else ""
    return f"{entry.title} — {use}{where}, about {format_bytes(entry.size)}, {entry.licence}, {sha}"
