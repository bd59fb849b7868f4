"""Everything that turns a Job into pixels: model discovery and loading, schedulers, backends,
the engine. Qt-free by rule (tests/test_layers.py checks it): the editor talks to it only
through `app.inference.engine`."""
