"""Backends that run INK sessions, discovered through the ``ink_spawner.backends`` entry point.

A site adds a backend by subclassing :class:`~ink_spawner.backends.base.Backend` and registering
it under that entry point; ``c.InkSpawner.backend = "<name>"`` selects it.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points

from ..jobstatus import BackendError, JobState, JobStatus
from .base import Backend

ENTRY_POINT_GROUP = "ink_spawner.backends"

_instances: dict[str, Backend] = {}


@lru_cache(maxsize=1)
def available_backends() -> dict[str, object]:
    """Entry-point name → entry point, for every installed backend.

    Scanned once per process: it reads package metadata from disk, and spawners are created
    on the hub's event loop.
    """
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def backend_class(name: str) -> type[Backend]:
    eps = available_backends()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise ValueError(f"unknown INK backend {name!r} (installed: {known})")
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ValueError(f"entry point {name!r} does not name a Backend subclass")
    return cls


def get_backend(name: str, config=None, log=None) -> Backend:
    """The one instance of a backend in this process, so that all sessions share its cache."""
    if name not in _instances:
        _instances[name] = backend_class(name)(config=config, log=log)
    return _instances[name]


def reset_backends() -> None:
    """Forget backend instances (tests that start several hubs in one process)."""
    _instances.clear()


__all__ = ["Backend", "BackendError", "JobState", "JobStatus", "available_backends",
           "backend_class", "get_backend", "reset_backends"]
