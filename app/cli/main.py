"""The command line: headless ``inpaint`` / ``img2img`` / ``models``, ``--version``,
``--self-test``, and the editor when no command is given.

Usage::

    inpaint-studio                                  # open the editor
    inpaint-studio photo.jpg other.png              # open the editor with these images
    inpaint-studio inpaint -i IN -m MASK -o OUT.png [--prompt TEXT --model REF ...]
    inpaint-studio img2img -i IN [-m MASK] -o OUT.png --model REF --prompt TEXT [...]
    inpaint-studio models [--json]                  # what models are found, and where
    inpaint-studio --self-test [OUT.png]            # check an installation, exit 0 if it works
    inpaint-studio --version

Every generation option maps to one `GenerationParams` field and is validated there, so the
CLI, the editor and the PNG metadata agree on names, defaults and ranges. Options left out take
the dataclass defaults.

Exit codes (for scripts): 0 success; 1 a run failed (out of GPU memory, cannot write the output,
an internal error); 2 bad usage or input (missing or unreadable file, mask of another size,
empty mask, value out of range, unknown scheduler, model that cannot be loaded); 130 cancelled
with Ctrl+C. A failure prints ONE line on stderr and writes nothing: outputs are written
atomically and only after the whole batch succeeded. Set ``INPAINT_STUDIO_DEBUG=1`` to get the
traceback of an internal error.

Importing this module is cheap (no numpy, Qt or torch): the editor's start goes through it, and
torch is imported only when a diffusion model is actually loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from app.core.params import CLASSICAL_MODELS, DEFAULT_MODEL, GenerationParams, ParamError, default_strength

PROG = "inpaint-studio"
COMMANDS = ("inpaint", "img2img", "models", "serve")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130

_DEFAULTS = GenerationParams()

#: GenerationParams field → the option that sets it, so a validation error names what the user typed.
OPTION_OF_FIELD = {
    "prompt": "--prompt",
    "negative_prompt": "--negative-prompt",
    "model": "--model",
    "scheduler": "--scheduler",
    "steps": "--steps",
    "guidance": "--guidance",
    "strength": "--strength",
    "seed": "--seed",
    "batch_size": "--samples",
    "width": "--width",
    "height": "--height",
    "mask_blur": "--mask-blur",
    "mask_grow": "--mask-grow",
    "inpaint_area": "--inpaint-area",
    "padding": "--padding",
    "masked_content": "--masked-content",
    "color_match": "--color-match",
}


class CliError(Exception):
    """A failure to report as one line on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse prints the whole usage block on errors; we want one line (and no exit)."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see {self.prog} --help)", EXIT_USAGE)


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (never raises, never calls sys.exit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in COMMANDS:
            ns = build_parser().parse_args(args)
            return ns.func(ns)
        return _top_level(args)
    except CliError as exc:
        _error(str(exc))
        return exc.code
    except KeyboardInterrupt:
        _error("cancelled; nothing was written")
        return EXIT_CANCELLED
    except SystemExit as exc:  # argparse's --help
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    except Exception as exc:  # one line, not a traceback, unless asked for
        if os.environ.get("INPAINT_STUDIO_DEBUG"):
            traceback.print_exc()
        _error(f"internal error: {type(exc).__name__}: {_one_line(exc)} (set INPAINT_STUDIO_DEBUG=1 for details)")
        return EXIT_FAILED


def _top_level(args: list[str]) -> int:
    """No command: --version, --self-test, or the editor with the given image paths."""
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} [PATH ...] | {PROG} {{{','.join(COMMANDS)}}} ... | {PROG} --self-test [OUT.png] | {PROG} --version",
        description="Inpaint Studio: mask-painting editor for Stable Diffusion 1.5 inpainting and img2img. "
        "Without a command it opens the editor (with the given images).",
        epilog="commands:\n"
        "  inpaint   inpaint the masked part of an image (headless)\n"
        "  img2img   re-generate an image, or its masked part, from a prompt (headless)\n"
        "  models    list the models found and where they were looked for\n"
        "  serve     serve the hosted inpainting APIs over HTTP (docs/API.md)\n"
        f"run '{PROG} COMMAND --help' for the options of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="images to open in the editor")
    parser.add_argument("--version", action="store_true", help="print the versions of the app and its components")
    parser.add_argument(
        "--self-test",
        nargs="?",
        const="",
        default=None,
        metavar="OUT.png",
        help="open the window offscreen, inpaint the bundled sample with the classical backend, "
        "check the result and exit 0 (writes OUT.png if given, else into a temporary folder)",
    )
    ns = parser.parse_args(args)
    if ns.version:
        from app.core import versions

        print(versions.version_text())
        return EXIT_OK
    if ns.self_test is not None:
        if ns.paths:
            raise CliError(f"--self-test takes at most one output path, got also: {' '.join(ns.paths)}")
        from app.widgets import selftest

        return selftest.run(ns.self_test or None)
    for path in ns.paths:
        if not os.path.exists(path) and not Path(path).suffix:
            raise CliError(
                f"{path!r} is neither a command ({', '.join(COMMANDS)}) nor an existing file (see {PROG} --help)"
            )
    return _run_gui(ns.paths)


def _run_gui(paths: list[str]) -> int:
    """Start the editor; imported lazily so that headless use never loads Qt."""
    try:
        from app.widgets.application import run_gui
    except ImportError as exc:
        raise CliError(
            f"the editor cannot start ({_one_line(exc)}); the headless commands still work (see {PROG} --help)",
            EXIT_FAILED,
        ) from None
    return int(run_gui(list(paths)) or 0)


# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The parser of the headless commands (also what ``COMMAND --help`` prints)."""
    parser = _Parser(prog=PROG, description="Inpaint Studio headless commands.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    inpaint = sub.add_parser(
        "inpaint",
        help="inpaint the masked part of an image",
        description="Repaint the white part of MASK in IN and write OUT.png (pixels outside the mask are kept "
        "exactly). Without --model the built-in classical method (OpenCV Telea) is used and the prompt is ignored.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_generation_args(inpaint, "inpaint")
    inpaint.set_defaults(func=lambda ns: run_generation(ns, "inpaint"))

    img2img = sub.add_parser(
        "img2img",
        help="re-generate an image (or its masked part) from a prompt",
        description="Re-generate IN (or only the white part of MASK) guided by the prompt; --strength decides how "
        "much changes. Needs a diffusion model (--model).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_generation_args(img2img, "img2img")
    img2img.set_defaults(func=lambda ns: run_generation(ns, "img2img"))

    models = sub.add_parser(
        "models",
        help="list the models found and where they were looked for",
        description="List the built-in methods and the diffusion models found in the models folder "
        "(INPAINT_STUDIO_MODELS) and the Hugging Face cache (HF_HUB_CACHE / HF_HOME), offline.",
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(func=run_models)

    from app.cli import serve

    serve.add_parser(sub)
    return parser


_EPILOG = (
    "output: OUT.png gets the AUTOMATIC1111 'parameters' text chunk and the 'inpaint-studio' JSON chunk.\n"
    "With --samples N > 1 the files are OUT-0.png … OUT-{N-1}.png; seeds are S, S+1, …; each written file\n"
    "is printed on stdout with its seed.\n"
    "exit codes: 0 ok, 1 run failed, 2 bad usage or input, 130 cancelled (Ctrl+C)."
)


def _add_generation_args(p: argparse.ArgumentParser, mode: str) -> None:
    d = _DEFAULTS
    io_group = p.add_argument_group("input and output")
    io_group.add_argument("-i", "--image", required=True, metavar="IN", help="the image (PNG, JPEG, TIFF, WebP)")
    io_group.add_argument(
        "-m",
        "--mask",
        required=mode == "inpaint",
        metavar="MASK",
        help="mask image of the same size: white = repaint, black = keep"
        + ("" if mode == "inpaint" else " (optional: without it the whole image is re-generated)"),
    )
    io_group.add_argument("-o", "--output", required=True, metavar="OUT.png", help="where to write the result (PNG)")

    g = p.add_argument_group("generation (defaults as in the editor)")
    g.add_argument("-p", "--prompt", metavar="TEXT", help="what to paint (required with a diffusion model)")
    g.add_argument("-n", "--negative-prompt", metavar="TEXT", help="what to avoid")
    g.add_argument(
        "--model",
        metavar="REF",
        help="a diffusers folder, a .safetensors/.ckpt file, a Hugging Face id in the local cache, or "
        + " / ".join(CLASSICAL_MODELS)
        + (f" (default: {DEFAULT_MODEL})" if mode == "inpaint" else " (required)"),
    )
    g.add_argument("--scheduler", metavar="NAME", help=f"sampler name, e.g. 'Euler a', 'DDIM', 'UniPC' (default: {d.scheduler})")
    g.add_argument("--steps", type=int, metavar="N", help=f"denoising steps, 1–150 (default: {d.steps})")
    g.add_argument("--guidance", type=float, metavar="CFG", help=f"CFG scale, 0–30 (default: {d.guidance:g})")
    g.add_argument(
        "--strength", type=float, metavar="X", help=f"denoising strength, 0.01–1 (default: {default_strength(mode):g})"
    )
    g.add_argument("--seed", type=int, metavar="S", help="0 … 4294967295, or -1 for random (default: -1); the seed used is printed")
    g.add_argument("--samples", type=int, metavar="N", help=f"how many images, 1–8, seeds S, S+1, … (default: {d.batch_size})")
    g.add_argument("--width", type=int, metavar="PX", help="model width, multiple of 8 in 256–2048 (default: from the region)")
    g.add_argument("--height", type=int, metavar="PX", help="model height, multiple of 8 in 256–2048 (default: from the region)")

    m = p.add_argument_group("mask and region")
    m.add_argument("--mask-blur", type=int, metavar="PX", help=f"feather of the mask edge in px, 0–64 (default: {d.mask_blur})")
    m.add_argument("--mask-grow", type=int, metavar="PX", help=f"grow the mask by px, 0–64 (default: {d.mask_grow})")
    m.add_argument("--inpaint-area", metavar="AREA", help=f"'masked' (crop around the mask) or 'whole' (default: {d.inpaint_area})")
    m.add_argument("--padding", type=int, metavar="PX", help=f"context around the mask with --inpaint-area masked, 0–256 px (default: {d.padding})")
    m.add_argument("--masked-content", metavar="MODE", help=f"'original', 'fill' or 'latent_noise' (default: {d.masked_content})")
    m.add_argument("--color-match", metavar="MODE", help=f"match the generated area's colour to its surround: 'auto' (diffusion models), 'on' or 'off' (default: {d.color_match})")

    r = p.add_argument_group("runtime")
    r.add_argument("--device", metavar="DEVICE", help="cuda, cuda:N, mps or cpu (default: the best available)")
    r.add_argument("--low-memory", action="store_true", help="attention slicing, VAE tiling and CPU offload for small GPUs")
    r.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow loading a pickle .ckpt file (it can run arbitrary code: only for files you trust)",
    )
    r.add_argument("--progress", action="store_true", help="print 'step N/M' on stderr even when it is not a terminal")


# --------------------------------------------------------------------------------------------
# inpaint / img2img
# --------------------------------------------------------------------------------------------
def params_from_args(ns: argparse.Namespace, mode: str) -> GenerationParams:
    """Options → validated `GenerationParams`; options not given keep the dataclass defaults."""
    given = {
        "prompt": ns.prompt,
        "negative_prompt": ns.negative_prompt,
        "model": ns.model,
        "scheduler": ns.scheduler,
        "steps": ns.steps,
        "guidance": ns.guidance,
        "strength": ns.strength,
        "seed": ns.seed,
        "batch_size": ns.samples,
        "width": ns.width,
        "height": ns.height,
        "mask_blur": ns.mask_blur,
        "mask_grow": ns.mask_grow,
        "inpaint_area": ns.inpaint_area,
        "padding": ns.padding,
        "masked_content": ns.masked_content,
        "color_match": ns.color_match,
    }
    kwargs: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    kwargs["mode"] = mode
    kwargs.setdefault("strength", default_strength(mode))
    if mode == "img2img" and "model" not in kwargs:
        raise CliError("img2img needs a diffusion model: give --model (see 'inpaint-studio models')")
    try:
        params = GenerationParams(**kwargs).validate()
    except ParamError as exc:
        option = OPTION_OF_FIELD.get(exc.field, exc.field)
        raise CliError(f"{option} {exc.value!r} is not valid: {exc.allowed}") from None
    if params.is_classical and mode == "img2img":
        raise CliError(f"img2img needs a diffusion model, not {params.model}: give --model (see 'inpaint-studio models')")
    if not params.is_classical and not params.prompt.strip():
        raise CliError("--prompt is required with a diffusion model")
    return params.replace(scheduler=_canonical_scheduler(params.scheduler))


def _canonical_scheduler(name: str) -> str:
    """The scheduler table's canonical name for ``name`` (aliases accepted), checked before any
    model is loaded; the table is data in `app.core.schedulers` (no torch import)."""
    from app.core import schedulers

    try:
        return schedulers.canonical_name(name)
    except ParamError as exc:
        raise CliError(f"--scheduler {exc.value!r} is not valid: {exc.allowed}") from None


def output_paths(output: str, samples: int) -> list[Path]:
    """OUT.png for one sample; OUT-0.png, OUT-1.png, … for a batch."""
    out = Path(output)
    if samples == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(samples)]


def _check_output(output: str) -> None:
    """Fail before any work when the output could not be written (a diffusion run takes minutes)."""
    out = Path(output)
    if out.suffix.lower() != ".png":
        raise CliError(f"-o {output}: the output is a PNG file; give a name ending in .png")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise CliError(f"-o {output}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CliError(f"-o {output}: the folder {folder} is not writable")
    if out.is_dir():
        raise CliError(f"-o {output} is a folder; give a file name ending in .png")


def run_generation(ns: argparse.Namespace, mode: str) -> int:
    """Load, validate, run and save; every failure becomes a `CliError` with one line."""
    params = params_from_args(ns, mode)
    _check_output(ns.output)
    outputs = output_paths(ns.output, params.batch_size)

    from app.core.imageio import ImageLoadError, load_image, load_mask  # numpy/cv2 only now

    try:
        loaded = load_image(ns.image)
    except ImageLoadError as exc:
        raise CliError(str(exc)) from None
    mask = None
    if ns.mask:
        try:
            mask = load_mask(ns.mask, (loaded.height, loaded.width))
        except ImageLoadError as exc:
            text = str(exc)
            raise CliError(text if "mask" in text.lower() else f"mask: {text}") from None
        if mode == "inpaint" and not mask.any():
            raise CliError(f"the mask {Path(ns.mask).name} is empty (all black): paint the area to repaint in white")

    show_progress = ns.progress or _isatty(sys.stderr)
    backend = _load_backend(params, ns, show_progress)

    from app.inference.engine import Cancelled, EmptyMaskError, Engine, Job
    from app.core.maskops import MaskError

    reporter = _ProgressPrinter(enabled=show_progress)
    with _CancelOnSigint() as interrupt:
        try:
            result = Engine(backend).run(Job(params, loaded.pixels, mask), reporter, interrupt.is_set)
        except Cancelled:
            reporter.finish()
            raise CliError("cancelled; nothing was written", EXIT_CANCELLED) from None
        except (EmptyMaskError, MaskError, ParamError) as exc:
            reporter.finish()
            raise CliError(_one_line(exc)) from None
        except Exception as exc:
            reporter.finish()
            raise _runtime_error(exc) from None
        reporter.finish()
        _save_all(outputs, result, loaded.icc_profile)
    for path, candidate in zip(outputs, result.candidates):
        print(f"wrote {path} (seed {candidate.seed})")
    sys.stdout.flush()
    return EXIT_OK


def _load_backend(params: GenerationParams, ns: argparse.Namespace, show_progress: bool) -> Any:
    """The classical backend, or a diffusion model through the one loader (torch imported here)."""
    if params.is_classical:
        from app.inference.classical import ClassicalBackend

        return ClassicalBackend(params.model)
    from app.inference.diffusers import catalog, checkpoint, loader
    from app.inference.errors import DeviceError, GpuOutOfMemory, ModelLoadError

    try:
        catalog.resolve_model(params.model)  # a wrong path fails here, before seconds of importing torch
    except ModelLoadError as exc:
        raise CliError(_one_line(exc)) from None
    quiet_libraries()
    if show_progress:
        print(f"loading {params.model} …", file=sys.stderr, flush=True)
    try:
        return loader.load_backend(params.model, ns.device, low_memory=ns.low_memory, allow_pickle=ns.allow_pickle)
    except ModelLoadError as exc:
        raise CliError(_one_line(exc)) from None
    except DeviceError as exc:
        raise CliError(f"--device {ns.device}: {_one_line(exc)}") from None
    except (GpuOutOfMemory, MemoryError) as exc:
        raise _runtime_error(exc) from None
    except ImportError as exc:
        raise CliError(
            f"diffusion models need torch and diffusers, which this installation lacks ({_one_line(exc)}); "
            "install the 'diffusion' extra or a diffusion build, or use --model builtin:telea"
        ) from None


def quiet_libraries() -> None:
    """Keep diffusers/transformers from printing advisory warnings and loading bars on stderr:
    the CLI's stderr is for our progress lines and one-line errors. Explicit user settings of
    these variables win."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from diffusers.utils import logging as diffusers_logging
    except ImportError:
        return
    diffusers_logging.disable_progress_bar()


def _runtime_error(exc: BaseException) -> CliError:
    if type(exc).__name__ == "GpuOutOfMemory" or isinstance(exc, MemoryError):
        hint = "" if "low-memory" in str(exc) else " (try --low-memory, fewer --samples or a smaller --width/--height)"
        return CliError(f"{_one_line(exc)}{hint}", EXIT_FAILED)
    if isinstance(exc, ValueError):  # e.g. an unknown scheduler reported by the pipeline
        return CliError(_one_line(exc), EXIT_USAGE)
    if os.environ.get("INPAINT_STUDIO_DEBUG"):
        traceback.print_exception(exc)
    return CliError(f"generation failed: {type(exc).__name__}: {_one_line(exc)}", EXIT_FAILED)


def _save_all(outputs: list[Path], result: Any, icc_profile: bytes | None) -> None:
    """Write every candidate atomically; if one fails, remove those already written by this run.

    Each file records its own seed with batch size 1, so "recall parameters" on any of them
    reproduces exactly that image.
    """
    from app.core.imageio import save_image

    written: list[Path] = []
    try:
        for path, candidate in zip(outputs, result.candidates):
            params = result.params.replace(seed=candidate.seed, batch_size=1)
            save_image(path, candidate.image, params=params, icc_profile=icc_profile)
            written.append(path)
    except BaseException as exc:  # incl. a second Ctrl+C: a batch is written whole or not at all
        for done in written:
            try:
                done.unlink()
            except OSError:
                pass
        if isinstance(exc, (OSError, ValueError)):
            raise CliError(f"cannot write {path}: {_one_line(exc)}", EXIT_FAILED) from None
        raise


class _ProgressPrinter:
    """``step N/M`` on stderr: rewritten in place on a terminal, one line per step otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = _isatty(sys.stderr)
        self.last: tuple[int, int] | None = None

    def __call__(self, progress: Any) -> None:
        if not self.enabled:
            return
        key = (int(progress.step), int(progress.total))
        if key == self.last or key[0] == 0:
            return
        self.last = key
        text = f"step {key[0]}/{key[1]}"
        if self.tty:
            sys.stderr.write("\r" + text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled and self.tty and self.last is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()
        self.last = None


class _CancelOnSigint:
    """First Ctrl+C asks the engine to stop at the next step (it raises `Cancelled`); a second
    one interrupts at once. Only the main thread can own signal handlers; elsewhere this is inert."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: Any = None
        self._installed = False

    def is_set(self) -> bool:
        return self._event.is_set()

    def _handler(self, signum: int, frame: Any) -> None:
        if self._event.is_set():
            raise KeyboardInterrupt
        self._event.set()

    def __enter__(self) -> _CancelOnSigint:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
def run_models(ns: argparse.Namespace) -> int:
    """What models exist and where we looked, without loading any (and without importing torch)."""
    from app.inference.diffusers import catalog, checkpoint, loader

    dirs = [str(d) for d in catalog.models_dirs()]
    cache = str(catalog.hf_cache_dir())
    found = list(catalog.discover_models())
    rows = [_model_row(m) for m in found]
    if ns.json:
        print(json.dumps({"models_dirs": dirs, "hf_cache": cache, "models": rows}, indent=2))
        return EXIT_OK
    print("Looked in:")
    for d in dirs:
        print(f"  models folder       {d}{'' if Path(d).is_dir() else '  (does not exist)'}")
    print(f"  Hugging Face cache  {cache}{'' if Path(cache).is_dir() else '  (does not exist)'}  (offline: only what is already downloaded)")
    print("  (add folders with INPAINT_STUDIO_MODELS, separated by " + repr(os.pathsep) + "; the cache follows HF_HUB_CACHE / HF_HOME)")
    usable = [r for r in rows if r["usable"]]
    unusable = [r for r in rows if not r["usable"]]
    print(f"Usable models ({len(usable)}):")
    for r in usable:
        print(f"  {r['name']}  [{_describe(r)}]")
        print(f"      --model {_quote(r['ref'])}")
    if not any(r["kind"] != "classical" for r in usable):
        print("  No diffusion model found: put a diffusers folder or an SD 1.5 .safetensors file in a models folder,")
        print("  or download one into the Hugging Face cache (huggingface-cli download ...).")
    if unusable:
        print(f"Found but not usable ({len(unusable)}):")
        for r in unusable:
            print(f"  {r['name']}  [{_describe(r)}]  {r['path']}")
            print(f"      {r['note']}")
    return EXIT_OK


def _model_row(info: Any) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key in ("name", "ref", "kind", "path", "inpainting", "family", "note"):
        value = getattr(info, key, None)
        row[key] = str(value) if isinstance(value, os.PathLike) else value
    row["usable"] = bool(getattr(info, "usable", True))
    return row


def _describe(row: dict[str, Any]) -> str:
    kinds = {"classical": "built in", "diffusers": "diffusers folder", "single_file": "single file", "hf_cache": "Hugging Face cache"}
    families = {"sd1": "SD 1.x", "classical": "classical"}
    if row["inpainting"] is None:
        use = "inpainting unknown until loaded"
    elif row["kind"] == "classical":
        use = "inpainting"
    else:
        use = "inpainting model (9-channel UNet)" if row["inpainting"] else "base model (img2img; inpaints by latent blending)"
    return ", ".join([kinds.get(row["kind"], row["kind"]), families.get(row["family"], row["family"] or "?"), use])


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {_one_line_text(message)}\n")
    sys.stderr.flush()


def _one_line(exc: BaseException) -> str:
    return _one_line_text(str(exc) or type(exc).__name__)


def _one_line_text(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _quote(text: str) -> str:
    return f"'{text}'" if any(c.isspace() for c in text) else text


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


__all__ = ["main", "build_parser", "params_from_args", "output_paths", "CliError"]
