"""The editor model (QtCore/QtGui, no QtWidgets): the `Document` with its undo history, the
editor session, the worker thread bridge, settings and crash recovery."""
