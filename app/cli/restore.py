"""``inpaint-studio upscale|denoise|restore-faces|colorize IN -o OUT [--model FILE] [-m MASK]``: a restoration model (spandrel)
over the whole image, tiled within a memory budget, through `app.service.restoration`.

The output keeps the input's layout, bit depth, alpha and ICC profile (`app.inference.
restoration.process`), and its DPI times the scale (the print size stays: `app.core.density`);
failures are one line and write nothing, like ``inpaint``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from app.cli.errors import EXIT_OK, CliError

#: command → (the purpose its model must have, help, description)
COMMANDS = {
    "upscale": ("upscale", "enlarge an image with an upscaling model (ESRGAN, Compact, SwinIR, HAT, …)",
                "Enlarge IN by the model's scale (×2, ×4, …), tile by tile, and write OUT."),
    "denoise": ("restore", "remove noise or JPEG artefacts with a restoration model (SCUNet, NAFNet, DRUNet, FBCNN, …)",
                "Run a same-size restoration model over IN (or only where MASK is white) and write OUT."),
    "restore-faces": ("face", "restore the faces in IN, or those painted white in MASK (GFPGAN, RestoreFormer, …)",
                      "Restore each face painted white in MASK (one blob per face) or, without MASK, each face "
                      "OpenCV's YuNet detector finds (its file, face_detection_yunet_2023mar.onnx, in a models "
                      "folder's facedetection/ sub-folder), and blend it back."),
    "colorize": ("colorize", "colourise a black-and-white photo with DDColor (needs spandrel-extra-arches)",
                 "Give IN the colour a DDColor model predicts, keeping IN's own lightness (so its detail) at full "
                 "size; only where MASK is white when given. A gray image is written as RGB. DDColor's "
                 "architecture comes with the optional package spandrel-extra-arches (README: Photo restoration)."),
}


def add_commands(sub: Any) -> None:
    for name, (purpose, help_text, description) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=description + " Without --model the first model found "
                           f"in a models folder's {purpose} sub-folders is used (see '{name} --help' and "
                           "'inpaint-studio models'). Alpha, 16-bit data and the ICC profile are kept; an "
                           "upscale multiplies the DPI by its scale, so the print size stays.")
        p.add_argument("image", metavar="IN", help="the image to process")
        p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the result (a .png: 8 or 16 bit, as IN)")
        p.add_argument("--model", metavar="FILE", help="a .safetensors/.pth model file, or the name of one found")
        p.add_argument("--tile", type=int, metavar="PX", help="tile side in input pixels (default: from the memory budget)")
        p.add_argument("--device", metavar="DEV", help="cpu, cuda, cuda:N (default: the best available)")
        p.add_argument("-m", "--mask", metavar="MASK",
                       help="white = where to apply it (same-size models only); the rest stays bit-identical")
        if name == "restore-faces":
            p.add_argument("--strength", type=float, default=1.0, help="0–1: how much of the restored face is used")
        p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
        p.add_argument("--progress", action="store_true", help="print 'step N/M' on stderr even when it is not a terminal")
        p.set_defaults(func=lambda ns, _purpose=purpose, _name=name: run(ns, _name, _purpose))


def run(ns: argparse.Namespace, command: str, purpose: str) -> int:
    from app.cli.generate import _check_output
    from app.cli.outputs import OutputRefused, check_outputs, output_lock

    _check_output(ns.output)
    if ns.tile is not None and ns.tile < 16:
        raise CliError(f"--tile {ns.tile}: use at least 16 pixels")
    try:
        check_outputs([Path(ns.output)], [Path(p) for p in (ns.image, ns.mask) if p], force=ns.force)
        with output_lock(Path(ns.output)):
            return _run(ns, command, purpose)
    except OutputRefused as exc:
        raise CliError(str(exc)) from None


def _run(ns: argparse.Namespace, command: str, purpose: str) -> int:
    from app.cli.generate import _CancelOnSigint, _isatty, _ProgressPrinter, as_cli_error
    from app.core import density
    from app.core.imageio import load_image, load_mask, save_image
    from app.service.restoration import RestorationRequest, RestorationService

    try:
        loaded = load_image(ns.image, read_metadata=False)
        service = RestorationService()
        summary = service.resolve(command, ns.model)  # a model of another purpose: refused before loading
        reporter = _ProgressPrinter(enabled=ns.progress or _isatty(sys.stderr))
        mask = None if ns.mask is None else load_mask(ns.mask, (loaded.height, loaded.width))
        strength = getattr(ns, "strength", 1.0)
        if not 0.0 <= strength <= 1.0:
            raise CliError(f"--strength {strength}: use a value from 0 to 1")
        request = RestorationRequest(command, loaded.pixels, mask=mask, model=str(summary.path), tile=ns.tile,
                                     device=ns.device, strength=strength)
        with _CancelOnSigint() as interrupt:
            try:
                result = service.run(request, lambda step, total: reporter(SimpleNamespace(step=step, total=total)),
                                     interrupt.is_set)
            finally:
                reporter.finish()
            pixels = result.pixels
            dpi = density.scaled(loaded.info.get("dpi"), pixels.shape[1] / loaded.width, pixels.shape[0] / loaded.height)
            save_image(ns.output, pixels, icc_profile=loaded.icc_profile, dpi=dpi)
    except BaseException as exc:
        raise as_cli_error(exc, ns, command, output=ns.output) from None
    height, width = pixels.shape[:2]
    print(f"wrote {ns.output} ({width}×{height}, {summary.architecture} ×{summary.scale})")
    return EXIT_OK

