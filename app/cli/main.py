"""The command line: headless ``inpaint`` / ``img2img`` / ``models`` and ``--version``.

Usage::

    inpaint-studio                                  # open the editor
    inpaint-studio photo.jpg other.png              # open the editor with these images
    inpaint-studio inpaint -i IN -m MASK -o OUT.png [--prompt TEXT --model REF ...]
    inpaint-studio img2img -i IN [-m MASK] -o OUT.png --model REF --prompt TEXT [...]
    inpaint-studio models [--json]                  # what models are found, and where
    inpaint-studio upscale|denoise|restore-faces|colorize IN -o OUT [--model FILE] [-m MASK]   # app.cli.restore
    inpaint-studio --self-test [OUT.png]            # check an installation, exit 0 if it works
    inpaint-studio --version

This module parses every form (so ``--help`` describes them all) but runs only the headless
ones; `app.__main__` hands in how to open the editor and run the self-test, so the CLI never
imports Qt. The generation commands live in `app.cli.generate`, the listing in `app.cli.models`.

Exit codes (for scripts): 0 success; 1 a run failed (out of GPU memory, cannot write the output,
an internal error); 2 bad usage or input (missing or unreadable file, mask of another size,
empty mask, value out of range, unknown scheduler, model that cannot be loaded); 130 cancelled
with Ctrl+C. A failure prints ONE line on stderr and writes nothing. Set
``INPAINT_STUDIO_DEBUG=1`` to get the traceback of an internal error.

Importing this module is cheap (no numpy, Qt or torch): the editor's start goes through it.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from app.cli.terminal import safe, tolerant_streams
from app.cli.errors import EXIT_BROKEN_PIPE, EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_USAGE, PROG, CliError, one_line

COMMANDS = ("inpaint", "img2img", "models", "info", "download", "serve", "upscale", "denoise", "restore-faces",
            "colorize")

#: How `app.__main__` opens the editor with paths, and runs the self-test with an output path.
Launcher = Callable[[list[str]], int]
SelfTest = Callable[[str | None], int]


class _Parser(argparse.ArgumentParser):
    """argparse prints the whole usage block on errors; we want one line (and no exit)."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see {self.prog} --help)", EXIT_USAGE)


def main(argv: Sequence[str] | None = None, *, editor: Launcher | None = None, self_test: SelfTest | None = None) -> int:
    """Run the command line; return the exit code (never raises, never calls sys.exit).
    ``editor`` and ``self_test`` come from `app.__main__`; without them those forms are refused."""
    args = list(sys.argv[1:] if argv is None else argv)
    tolerant_streams()
    try:
        if args and args[0] in COMMANDS:
            ns = build_parser().parse_args(args)
            return ns.func(ns)
        return _top_level(args, editor, self_test)
    except CliError as exc:
        _error(str(exc))
        return exc.code
    except KeyboardInterrupt:
        _error("cancelled; nothing was written")
        return EXIT_CANCELLED
    except SystemExit as exc:  # argparse's --help
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    except BrokenPipeError:  # `inpaint-studio models | head`: the reader left; say nothing, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail again
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # one line, not a traceback, unless asked for
        if os.environ.get("INPAINT_STUDIO_DEBUG"):
            traceback.print_exc()
        _error(f"internal error: {type(exc).__name__}: {one_line(exc)} (set INPAINT_STUDIO_DEBUG=1 for details)")
        return EXIT_FAILED


def _top_level(args: list[str], editor: Launcher | None, self_test: SelfTest | None) -> int:
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
        "  info      show the generation parameters stored in images (any SD tool's format)\n"
        "  download  download a model into the models folder (only when you run it)\n"
        "  serve     serve the hosted inpainting APIs over HTTP (docs/API.md)\n"
        "  upscale   enlarge an image with an upscaling model (ESRGAN, …; tiled)\n"
        "  denoise   remove noise or JPEG artefacts with a restoration model\n"
        "  restore-faces  restore the faces painted in a mask (GFPGAN, RestoreFormer, …)\n"
        "  colorize  colourise a black-and-white photo (DDColor, with spandrel-extra-arches)\n"
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
        return _launch(self_test, ns.self_test or None, "--self-test")
    for path in ns.paths:
        if not os.path.exists(path) and not Path(path).suffix:
            raise CliError(
                f"{path!r} is neither a command ({', '.join(COMMANDS)}) nor an existing file (see {PROG} --help)"
            )
    return _launch(editor, list(ns.paths), "the editor")


def _launch(launcher: Callable | None, argument: object, what: str) -> int:
    if launcher is None:
        raise CliError(f"{what} is not part of the headless command line: run '{PROG}' (python -m app)")
    return int(launcher(argument) or 0)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the headless commands (also what ``COMMAND --help`` prints)."""
    from app.cli import download, generate, info, models, restore, serve

    parser = _Parser(prog=PROG, description="Inpaint Studio headless commands.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    generate.add_commands(sub)
    models.add_command(sub)
    info.add_parser(sub)
    download.add_parser(sub)
    serve.add_parser(sub)
    restore.add_commands(sub)
    return parser


def _error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {safe(one_line(message))}\n")
    sys.stderr.flush()


__all__ = ["main", "build_parser", "COMMANDS"]
