"""What lives on disk: project files, autosave/recovery files, atomic writes, data folders.
No Qt widgets, no torch."""
