"""Save a spawner's job id in the hub database as soon as the job is submitted.

JupyterHub stores spawner state only after a successful start. A hub that dies between the
submission and the port report would otherwise forget a queued job; with the id saved, the
restarted hub's ``poll()`` finds it and cancels it, so no job is left behind. JupyterHub has
no public call for saving state mid-start, so this writes the spawner's ORM row through the
session it is attached to (``Spawner.db`` is deprecated in JupyterHub 6).
"""

from __future__ import annotations

from sqlalchemy.orm import object_session


def save_state_now(spawner) -> bool:
    """Commit ``spawner.get_state()`` to its ORM row; False where there is none (tests)."""
    orm_spawner = getattr(spawner, "orm_spawner", None)
    session = object_session(orm_spawner) if orm_spawner is not None else None
    if session is None:
        return False
    orm_spawner.state = spawner.get_state()
    session.commit()
    return True
