"""``inpaint-studio download MODEL [--to DIR]``: fetch a model into the models folder, only when asked.

MODEL is a catalogue name (``--list`` shows them), a Hugging Face repo id (``org/name``; the token of
``hf auth login`` or ``HF_TOKEN`` is used, ``HF_ENDPOINT`` is honoured) or an http(s) URL of one
``.safetensors`` file. Progress (bytes, rate, time left) goes to stderr; Ctrl+C stops and keeps what
was fetched, and running the same command again resumes. A failure is one line on stderr.
Exit codes: 0 done (or already there), 1 the download failed, 2 bad usage, 130 cancelled.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from app.cli.terminal import safe

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
PROG = "inpaint-studio download"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``download`` command to the CLI's sub-parsers."""
    p = subparsers.add_parser(
        "download",
        help="download a model, LoRA or restoration model (catalogue name, Hugging Face repo id or URL) into the models folder",
        description="Download an SD 1.5 model, LoRA or restoration model into the models folder (or --to DIR), "
        "verified and resumable. "
        "Nothing is ever downloaded unless you run this command (or use Add model… ▸ Download a model… in the editor).",
        epilog="MODEL: a name from --list, a Hugging Face repo id (org/name) or an http(s) URL of a .safetensors file.\n"
        "Catalogue LoRAs go to the models folder's Lora/, restoration models to LaMa/, RealESRGAN/, GFPGAN/ or DDColor/.\n"
        "Hugging Face: HF_ENDPOINT, HF_HOME and the token of 'hf auth login' (or HF_TOKEN) are honoured.\n"
        "exit codes: 0 ok, 1 download failed, 2 bad usage, 130 cancelled (run again to resume).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="what to download")
    p.add_argument("--to", metavar="DIR", help="the models folder to put it in (default: the models folder; "
                   "a catalogue LoRA or restoration model goes in its sub-folder there)")
    p.add_argument("--list", action="store_true", help="list the catalogue of known-good models and exit")
    p.add_argument("--file", metavar="NAME", help="one checkpoint file of a repo holding several")
    p.add_argument("--revision", metavar="REV", help="a branch, tag or commit of the repo (default: main)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="also accept .bin/.ckpt pickle weights (they can run arbitrary code: only for sources you trust)")
    p.add_argument("--progress", action="store_true", help="print progress lines on stderr even when it is not a terminal")
    p.set_defaults(func=run)
    return p


def run(ns: argparse.Namespace) -> int:
    from app.storage import download_catalogue, download_errors, download_plan, downloads

    if ns.list:
        for entry in download_catalogue.CATALOGUE:
            print(f"{entry.key:26} {download_catalogue.describe_entry(entry)}")
            print(f"{'':26} {entry.page}")
        return EXIT_OK
    if not ns.model:
        return _fail(f"give a MODEL to download, or --list to see the catalogue (see {PROG} --help)", EXIT_USAGE)
    dest = Path(ns.to).expanduser() if ns.to else None
    if dest is not None and not dest.is_dir():
        return _fail(f"--to {ns.to}: no such folder; create it first", EXIT_USAGE)
    printer = _ProgressLine(enabled=ns.progress or _isatty(sys.stderr))
    try:
        plan = download_plan.plan_download(ns.model, filename=ns.file, revision=ns.revision, allow_pickle=ns.allow_pickle)
        result = downloads.download(plan, dest, progress=printer)
    except KeyboardInterrupt:
        printer.finish()
        return _fail("cancelled; what was fetched is kept, run the same command again to resume", EXIT_CANCELLED)
    except download_errors.DownloadCancelled as exc:
        printer.finish()
        return _fail(str(exc), EXIT_CANCELLED)
    except download_errors.DownloadError as exc:
        printer.finish()
        return _fail(str(exc), EXIT_FAILED)
    printer.finish()
    if result.already_present:
        print(safe(f"already there: {result.path}"))
    else:
        print(safe(f"downloaded {result.path} ({download_catalogue.format_bytes(result.fetched)} fetched)"))
    print(safe(_use_hint(plan, result.path)))
    return EXIT_OK


def _use_hint(plan, path: Path) -> str:
    """How to use what arrived: a checkpoint by --model, a LoRA by its prompt tag (named as
    `network_files.discover_loras` names it: the folder of a diffusers-layout file, else the stem)."""
    if plan.folder == "Lora":
        return f"use it with: <lora:{path.name if plan.is_folder else path.stem}:1> in the prompt"
    if plan.folder == "LaMa":
        return f"it is in {path.parent}, where the restoration tools look: use it with --model lama"
    if plan.folder:
        return f"it is in {path.parent}, where the restoration tools look"
    return f"use it with: --model {path}"


class _ProgressLine:
    """One line rewritten in place on a terminal; elsewhere (with --progress) a line per second."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = _isatty(sys.stderr)
        self.shown = False
        self.last = 0.0

    def __call__(self, progress) -> None:
        from app.storage.download_catalogue import format_progress

        if not self.enabled:
            return
        text = format_progress(progress)
        if self.tty:
            sys.stderr.write("\r\x1b[K" + text)
        elif time.monotonic() - self.last >= 1.0 or progress.done == progress.total:
            self.last = time.monotonic()
            sys.stderr.write(text + "\n")
        else:
            return
        self.shown = True
        sys.stderr.flush()

    def finish(self) -> None:
        if self.shown and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
        self.shown = False


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"inpaint-studio: error: {message}\n")
    sys.stderr.flush()
    return code


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
