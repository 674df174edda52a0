"""Cached build products (TensorRT engines, INT8 models): built once, written atomically, rebuilt if unusable.

Building takes seconds to minutes, so products live under a file name that hashes everything they depend on.
Writes go to a temporary file renamed into place, so a crash never leaves half a file under the final name; a
cached file that does not load (truncated, corrupt, written by another version) is rebuilt with a warning.
"""

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from clrkdnet_core.errors import BackendError

LOG = logging.getLogger(__name__)
Loaded = TypeVar("Loaded")


def load_or_build(
    path: str | os.PathLike, build: Callable[[], bytes], load: Callable[[bytes], Loaded], what: str
) -> Loaded:
    """Load the cached ``path``, or build, cache and load a new one.

    Args:
        path: the cache file (its folder is created when missing).
        build: returns the freshly built file's bytes.
        load: turns the bytes into what the caller uses; returns None or raises when they are unusable.
        what: what is built, for the log and errors (``TensorRT engine``).
    """
    path = Path(path)
    if path.is_file():
        loaded = _try_load(load, path.read_bytes(), what)
        if loaded is not None:
            return loaded
        LOG.warning("cached %s %s does not load; rebuilding it", what, path)
    LOG.warning("building %s %s; this may take a few minutes", what, path.name)
    data = build()
    loaded = _try_load(load, data, what)
    if loaded is None:
        raise BackendError(f"the {what} built just now does not load ({path.name})")
    write_atomically(path, data)
    return loaded


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in its folder (readers never see half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _try_load(load: Callable[[bytes], Loaded], data: bytes, what: str) -> Loaded | None:
    try:
        return load(data)
    except Exception as exc:  # runtimes raise various types for corrupt or foreign files
        LOG.warning("%s does not load: %s", what, exc)
        return None
