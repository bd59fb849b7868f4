"""The frozen executable's entry script: the same `app.__main__.main` as `python -m app`."""

import multiprocessing
import os
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a worker process started by a library must not relaunch the app
    # A windowed Windows executable has no console: give print() somewhere harmless to go.
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")
    from app.__main__ import main

    sys.exit(main())
