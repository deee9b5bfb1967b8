"""Keep third-party constructors from configuring the host process's logging. No Django imports: the sandbox
seller uses it too."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_basic_config() -> Iterator[None]:
    """While inside, ``logging.basicConfig()`` is a no-op: the root logger has a (silent) handler.

    The MCP SDK's server constructor calls basicConfig(), which would otherwise add a root handler and change
    how every log line of the web process, the worker or a test run is formatted."""
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        yield
    finally:
        root.removeHandler(guard)
