"""Entry point of ``python -m app`` and the ``inpaint-studio`` console script (and of the
packaged executable). `app.cli.main.main` parses every form and runs the headless ones (inpaint,
img2img, models, --version); this module hands it the two that need Qt: ``--self-test``
(`app.widgets.selftest.run`) and the editor (`app.widgets.application.run_gui`, for no argument
or image paths), each imported only when chosen, so the CLI never imports the widgets."""

from __future__ import annotations

import sys


def _self_test(output: str | None) -> int:
    from app.widgets import selftest

    return selftest.run(output)


def _editor(paths: list[str]) -> int:
    from app.cli.errors import EXIT_FAILED, PROG, CliError, one_line

    try:
        from app.widgets.application import run_gui
    except ImportError as exc:
        raise CliError(
            f"the editor cannot start ({one_line(exc)}); the headless commands still work (see {PROG} --help)",
            EXIT_FAILED,
        ) from None
    return int(run_gui(paths) or 0)


def main(argv: list[str] | None = None) -> int:
    from app.cli.main import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv, editor=_editor, self_test=_self_test)


if __name__ == "__main__":
    sys.exit(main())
