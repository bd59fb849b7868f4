"""``inpaint-studio inpaint`` / ``img2img``: options → `GenerationRequest` → the generation
service → PNG files, one per candidate, each recording the parameters that regenerate it alone.

Every generation option maps to one `GenerationParams` field and is validated there; what the
chosen backend can do is checked by the service before any model loads, so the CLI, the editor
and the PNG metadata agree on names, defaults, ranges and candidate records. Outputs are
written atomically and only after the whole batch succeeded.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from app.cli.control_args import add_control_args, with_controls
from app.cli.errors import EXIT_OK, CliError, one_line
from app.cli.guide_args import add_guide_args, guide_params, reference_image
from app.cli.terminal import safe
from app.core.errors import UserError
from app.core.outpaint import FILL_MODES, ExpandError, parse_expansion
from app.core.params import CLASSICAL_MODELS, DEFAULT_MODEL, GenerationParams, ParamError, default_strength
from app.service import FrontEnd, build, outcome, thread_count

_DEFAULTS = GenerationParams()

#: GenerationParams field → the option that sets it, so an error names what the user typed.
#: A new option: add its field here and its argument in `_add_generation_args`.
CLI = FrontEnd("cli", {
    "prompt": "--prompt", "negative_prompt": "--negative-prompt", "mode": "command", "model": "--model",
    "scheduler": "--scheduler", "steps": "--steps", "guidance": "--guidance", "strength": "--strength",
    "seed": "--seed", "batch_size": "--samples", "width": "--width", "height": "--height",
    "mask_blur": "--mask-blur", "mask_grow": "--mask-grow", "inpaint_area": "--inpaint-area",
    "padding": "--padding", "masked_content": "--masked-content", "color_match": "--color-match",
    "image": "-i", "mask": "-m",
})

_EPILOG = (
    "output: OUT.png gets the AUTOMATIC1111 'parameters' text chunk and the 'inpaint-studio' JSON chunk.\n"
    "With --samples N > 1 the files are OUT-0.png … OUT-{N-1}.png; seeds are S, S+1, …; each written file\n"
    "is printed on stdout with its seed (a classical method has no seed and makes one image).\n"
    "exit codes: 0 ok, 1 run failed, 2 bad usage or input, 130 cancelled (Ctrl+C)."
)


#: command → (help, description) of the two generation commands.
_COMMANDS = {
    "inpaint": ("inpaint the masked part of an image",
                "Repaint the white part of MASK in IN and write OUT.png (pixels outside the mask are kept exactly). "
                "Without --model the built-in classical method (OpenCV Telea) is used and the prompt is ignored."),
    "img2img": ("re-generate an image (or its masked part) from a prompt",
                "Re-generate IN (or only the white part of MASK) guided by the prompt; --strength decides how "
                "much changes. Needs a diffusion model (--model)."),
}


def add_commands(sub: Any) -> None:
    for mode, (summary, description) in _COMMANDS.items():
        parser = sub.add_parser(mode, help=summary, description=description, epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_generation_args(parser, mode)
        parser.set_defaults(func=lambda ns, _mode=mode: run_generation(ns, _mode))


def _add_generation_args(p: argparse.ArgumentParser, mode: str) -> None:
    d = _DEFAULTS
    io_group = p.add_argument_group("input and output")
    io_group.add_argument("-i", "--image", required=True, metavar="IN", help="the image (PNG, JPEG, TIFF, WebP)")
    io_group.add_argument("-m", "--mask", metavar="MASK", help="mask image of the same size: white = repaint, black = keep" + (
        " (required unless --expand is given)" if mode == "inpaint" else " (optional: without it the whole image is re-generated)"))
    io_group.add_argument("-o", "--output", required=True, metavar="OUT.png", help="where to write the result (PNG)")
    io_group.add_argument("--force", action="store_true",
                          help="replace OUT.png even if it is read-only, a link, or one of the inputs")

    g = p.add_argument_group("generation (defaults as in the editor)")
    g.add_argument("-p", "--prompt", metavar="TEXT", help="what to paint (required with a diffusion model)")
    g.add_argument("-n", "--negative-prompt", metavar="TEXT", help="what to avoid")
    g.add_argument("--model", metavar="REF", help="a diffusers folder, a .safetensors/.ckpt file, a Hugging Face id in the "
                   "local cache, remote:http://HOST:PORT[#MODEL] (a model on an 'inpaint-studio serve' machine; see --token), "
                   "or " + " / ".join(CLASSICAL_MODELS) + (f" (default: {DEFAULT_MODEL})" if mode == "inpaint" else " (required)"))
    g.add_argument("--scheduler", metavar="NAME", help=f"sampler name as any SD tool writes it, e.g. 'Euler a', 'DDIM', 'DPM++ 2M Karras', 'dpmpp_2m_sde_karras' (default: {d.scheduler})")
    g.add_argument("--schedule", metavar="TYPE", help="the sampler's schedule type, as A1111's 'Schedule type': "
                   "Automatic, Uniform, Karras, Exponential, Polyexponential, 'SGM Uniform', 'KL Optimal', "
                   "'Align Your Steps', Simple, Normal, DDIM or Beta (default: the one --scheduler names, else Automatic)")
    g.add_argument("--steps", type=int, metavar="N", help=f"denoising steps, 1–150 (default: {d.steps})")
    g.add_argument("--guidance", type=float, metavar="CFG", help=f"CFG scale, 0–30 (default: {d.guidance:g})")
    g.add_argument("--strength", type=float, metavar="X", help=f"denoising strength, 0.01–1 (default: {default_strength(mode):g})")
    g.add_argument("--seed", type=int, metavar="S", help="0 … 18446744073709551615 (64-bit), or -1 for random (default: -1); the seed used is printed")
    g.add_argument("--samples", type=int, metavar="N", help=f"how many images, 1–8, seeds S, S+1, … (default: {d.batch_size})")
    g.add_argument("--width", type=int, metavar="PX", help="model width, multiple of 8 in 256–2048 (default: from the region)")
    g.add_argument("--height", type=int, metavar="PX", help="model height, multiple of 8 in 256–2048 (default: from the region)")

    m = p.add_argument_group("mask and region")
    m.add_argument("--mask-blur", type=int, metavar="PX", help=f"feather of the mask edge in px, 0–64 (default: {d.mask_blur})")
    m.add_argument("--mask-grow", type=int, metavar="PX", help=f"grow the mask by px, 0–64 (default: {d.mask_grow})")
    m.add_argument("--inpaint-area", metavar="AREA", help=f"'masked' (crop around the mask) or 'whole' (default: {d.inpaint_area})")
    m.add_argument("--padding", type=int, metavar="PX", help=f"context around the mask with --inpaint-area masked, 0–256 px (default: {d.padding})")
    m.add_argument("--masked-content", metavar="MODE", help=f"'original', 'fill', 'latent_noise' or 'latent_nothing' (default: {d.masked_content})")
    m.add_argument("--expand", metavar="L,T,R,B", help="outpaint: grow the canvas by these pixels on the left, top, right, bottom; "
                   "the new area is added to the mask (the mask becomes optional) and pre-filled (see --expand-fill)")
    m.add_argument("--expand-fill", metavar="MODE", default="stretch",
                   help="how the new area is pre-filled before the model paints it: " + ", ".join(FILL_MODES) + " (default: stretch)")
    m.add_argument("--color-match", metavar="MODE", help=f"match the generated area's colour to its surround: 'auto' (diffusion models), 'on' or 'off' (default: {d.color_match})")

    add_control_args(p)
    add_guide_args(p)

    r = p.add_argument_group("runtime")
    r.add_argument("--device", metavar="DEVICE", help="cuda, cuda:N, mps or cpu (default: the best available)")
    r.add_argument("--low-memory", action="store_true", help="attention slicing, VAE tiling and CPU offload for small GPUs")
    r.add_argument("--threads", type=thread_count, metavar="N", help="CPU threads torch uses (default: all cores); the same seed "
                   "gives identical pixels on a CPU only at the same thread count")
    r.add_argument("--token", metavar="TOKEN", help="API token of a remote: model's server (default: the "
                   "INPAINT_STUDIO_TOKEN environment variable)")
    r.add_argument("--allow-pickle", action="store_true",
                   help="allow loading a pickle .ckpt file (it can run arbitrary code: only for files you trust)")
    r.add_argument("--progress", action="store_true", help="print 'step N/M' on stderr even when it is not a terminal")


# --------------------------------------------------------------------------------------------
def params_from_args(ns: argparse.Namespace, mode: str) -> GenerationParams:
    """Options → `GenerationParams` through the service's one builder (options not given keep
    the defaults); checked later, once, by the service (`check_params`)."""
    given = {field: getattr(ns, option[2:].replace("-", "_"), None)
             for field, option in CLI.names.items() if option.startswith("--")}
    if mode == "img2img" and given.get("model") is None:
        raise CliError("img2img needs a diffusion model: give --model (see 'inpaint-studio models')")
    try:
        params = build(CLI, given | guide_params(ns) | {"mode": mode})
        if getattr(ns, "schedule", None):  # overrides a schedule the --scheduler name carries
            params = params.replace(scheduler=_with_schedule(params.scheduler, ns.schedule))
    except ParamError as exc:
        raise _param_error(exc) from None
    return params


def _with_schedule(scheduler: str, schedule_name: str) -> str:
    """``--scheduler``'s sampler with ``--schedule``'s type (a `ParamError` for an unknown sampler)."""
    from app.core import schedulers  # data only, no torch: a typo fails before any work

    sampler = schedulers.split(schedulers.canonical_name(scheduler))[0]
    allowed = schedulers.schedules_for(sampler)
    try:
        schedule = schedulers.schedule_type(schedule_name)
    except ParamError:
        schedule = None
    if schedule not in allowed:
        raise CliError(f"--schedule {schedule_name!r} is not valid with {sampler}: one of " + ", ".join(allowed))
    return schedulers.compose(sampler, schedule)


def _param_error(exc: ParamError) -> CliError:
    exc = CLI.error(exc)
    return CliError(f"{exc.field} {exc.value!r} is not valid: {exc.allowed}", outcome(exc, "cli"))


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


def _check_name_lengths(paths: list[Path]) -> None:
    """A batch's OUT-N.png is longer than OUT.png: say so before a run of minutes, not after."""
    from app.core.atomic import name_max

    for path in paths:
        limit = name_max(path.parent if str(path.parent) else Path("."))
        if len(os.fsencode(path.name)) > limit:
            raise CliError(f"-o: the output name {path.name[:40]}… would be {len(os.fsencode(path.name))} bytes, "
                           f"more than the {limit} this folder allows; choose a shorter name")


def _user_error(exc: UserError, ns: argparse.Namespace) -> CliError:
    """A typed error as the CLI says it: option names for parameters, the exit code of its kind."""
    from app.service import DeviceError, GpuOutOfMemory

    if isinstance(exc, ParamError):
        return _param_error(exc)
    text = one_line(exc)
    if isinstance(exc, DeviceError):
        return CliError(f"--device {ns.device}: {text}", outcome(exc, "cli"))
    if isinstance(exc, GpuOutOfMemory) and "low-memory" not in text:
        text += " (try --low-memory, fewer --samples or a smaller --width/--height)"
    return CliError(text, outcome(exc, "cli"))


def as_cli_error(exc: BaseException, ns: argparse.Namespace, what: str, output: str | None = None) -> BaseException:
    """What a command's run raises instead of ``exc``: its one line and exit code (a typed
    error as `_user_error` says it, a cancel, a write failure of ``output``, anything else as
    "WHAT failed"); a `CliError` or Ctrl+C as it is."""
    from app.service import Cancelled

    if isinstance(exc, UserError):
        return _user_error(exc, ns)
    if isinstance(exc, Cancelled):
        return CliError("cancelled; nothing was written", outcome(exc, "cli"))
    if isinstance(exc, (CliError, KeyboardInterrupt)) or not isinstance(exc, Exception):
        return exc
    if isinstance(exc, OSError) and output is not None:
        return CliError(f"cannot write {output}: {one_line(exc)}", outcome(exc, "cli"))
    if os.environ.get("INPAINT_STUDIO_DEBUG"):
        traceback.print_exception(exc)
    return CliError(f"{what} failed: {type(exc).__name__}: {one_line(exc)}", outcome(exc, "cli"))


def run_generation(ns: argparse.Namespace, mode: str) -> int:
    """Build, check (the service's rules, once, before any image is read), run and save; every
    failure becomes a `CliError` with one line."""
    from app.service import GenerationService, LoadOptions

    service = GenerationService()
    options = LoadOptions(device=ns.device, low_memory=ns.low_memory, allow_pickle=ns.allow_pickle,
                          server_token=ns.token)
    try:
        params = service.check_params(params_from_args(ns, mode), options, CLI)
    except UserError as exc:
        raise _user_error(exc, ns) from None
    _check_output(ns.output)
    expansion = _expansion_from_args(ns, mode)
    from app.cli.outputs import OutputRefused, check_outputs, output_lock

    # Before any work: what could be written (one file, or one per sample) must not destroy anything.
    maybe = {*output_paths(ns.output, 1), *output_paths(ns.output, params.batch_size)}
    _check_name_lengths(sorted(maybe))
    try:
        check_outputs(sorted(maybe), [Path(p) for p in (ns.image, ns.mask) if p], force=ns.force)
        with output_lock(Path(ns.output)):
            return _run(ns, service, params, options, expansion)
    except OutputRefused as exc:
        raise CliError(str(exc)) from None


def _expansion_from_args(ns: argparse.Namespace, mode: str) -> Any:
    """--expand/--expand-fill → `Expansion` or None; a missing mask is only fine with --expand."""
    expand = getattr(ns, "expand", None)
    fill = getattr(ns, "expand_fill", "stretch")
    if fill not in FILL_MODES:
        raise CliError(f"--expand-fill {fill!r} is not valid: use one of {', '.join(FILL_MODES)}")
    if expand is None:
        if mode == "inpaint" and not ns.mask:
            raise CliError("inpaint needs a mask: give -m MASK (or --expand L,T,R,B to outpaint)")
        return None
    try:
        return parse_expansion(expand)
    except ExpandError as exc:
        raise CliError(str(exc)) from None


def _inputs(ns: argparse.Namespace, mode: str, expansion: Any, grey: bool = False) -> tuple[Any, Any, Any, Any]:
    """(loaded image, pixels, mask, context box): both headers first, so a mask of the wrong size
    is told before a 16383² image is decoded; an expansion grows all three. ``grey``: keep the
    mask's grey levels (soft inpainting)."""
    from app.core.imageio import ImageLoadError, load_image, load_mask, probe_image  # numpy/cv2 only now

    width, height = probe_image(ns.image).oriented_size
    if ns.mask:
        mask_w, mask_h = probe_image(ns.mask).oriented_size
        if (mask_w, mask_h) != (width, height):
            raise ImageLoadError(f"The mask is {mask_w}×{mask_h} but the image is {width}×{height}: "
                                 "use a mask of the same size as the image.")
    loaded = load_image(ns.image, read_metadata=False)  # the CLI never recalls parameters
    mask = None
    if ns.mask:
        mask = load_mask(ns.mask, (loaded.height, loaded.width), grey=grey)
        if mode == "inpaint" and not mask.any() and expansion is None:
            raise CliError(f"the mask {Path(ns.mask).name} is empty (all black): paint the area to repaint in white")
    if expansion is None:
        return loaded, loaded.pixels, mask, None
    from app.core.outpaint import prepare_outpaint

    grown = prepare_outpaint(loaded.pixels, mask, expansion, ns.expand_fill)
    return loaded, grown.pixels, grown.mask, grown.context


def _run(ns: argparse.Namespace, service: Any, params: GenerationParams, options: Any, expansion: Any = None) -> int:
    from app.service import GenerationRequest, use_threads

    try:
        loaded, pixels, mask, context = _inputs(ns, params.mode, expansion, grey=params.soft_inpainting is not None)
        use_threads(ns.threads)
        params, control_images = with_controls(ns, params, pixels)
        request = GenerationRequest(params, pixels, mask, context, options=options, front=CLI, checked=True,
                                    control_images=control_images, reference_image=reference_image(ns))
        caps = service.capabilities(params.model, options)
        show_progress = ns.progress or _isatty(sys.stderr)
        if show_progress and not service.is_loaded(params.model, options) and not caps.prompt_free:
            print(safe(f"loading {params.model} …"), file=sys.stderr, flush=True)
        service.preload(params.model, options)
        reporter = _ProgressPrinter(enabled=show_progress)
        with _CancelOnSigint() as interrupt:
            try:
                record = service.run(request, reporter, interrupt.is_set)
            finally:
                reporter.finish()
            outputs = output_paths(ns.output, len(record.candidates))
            icc_profile = loaded.icc_profile
            del loaded, request, mask, pixels  # the input's pixels (72 MB at 24 MP) go before the encoder's buffers
            _save_all(outputs, record, icc_profile)
    except BaseException as exc:
        raise as_cli_error(exc, ns, "generation") from None
    for path, seed in zip(outputs, record.seeds):
        print(safe(f"wrote {path} (seed {seed})" if not caps.prompt_free else f"wrote {path}"))
    sys.stdout.flush()
    return EXIT_OK


def _save_all(outputs: list[Path], record: Any, icc_profile: bytes | None) -> None:
    """Every candidate, each recording its own seed (batch 1), or none (`save_outputs`)."""
    from app.service import save_outputs

    try:
        save_outputs(outputs, record, icc_profile=icc_profile)
    except OSError as exc:  # "the disk is full; …", never a raw "[Errno 28]"
        from app.core.atomic import write_error_reason

        raise CliError(f"cannot write {exc.filename or outputs[0]}: {write_error_reason(exc)}", outcome(exc, "cli")) from None
    except ValueError as exc:
        raise CliError(f"cannot write {outputs[0]}: {one_line(exc)}", outcome(exc, "cli")) from None


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


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
