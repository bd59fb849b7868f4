"""Entry point of ``python -m app`` and the ``inpaint-studio`` console script (and of the
packaged executable). The dispatch lives in `app.cli.main.main` so that both entry points behave the
same: a command (inpaint, img2img, models), --version or --self-test runs headless; no argument,
or image paths, opens the editor (`app.widgets.application.run_gui`, imported only then)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from app.cli.main import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
