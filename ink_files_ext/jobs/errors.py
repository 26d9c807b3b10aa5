"""How a scheduler's failure reaches a job API caller."""

from __future__ import annotations

from tornado import web

from ink_spawner.jobstatus import BackendError


def backend_error(e: BackendError) -> web.HTTPError:
    """503 when the scheduler cannot be reached, 422 when it refused the job."""
    message = str(e)
    if "not reachable" in message or "did not answer" in message or "not installed" in message:
        return web.HTTPError(503, message)
    return web.HTTPError(422, f"the scheduler refused the job: {message}")
