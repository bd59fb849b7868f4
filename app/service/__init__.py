"""The generation service: the one Qt-free path from a request to candidates and records that
every front end (window, CLI, self-test, HTTP server) calls. Importing it loads no torch."""
