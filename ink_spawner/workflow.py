"""What the hub and the user's server agree on for the workflow (job) API.

The hub defines INK's custom scopes and grants them to the ``user`` role; a token a user creates
on the token page may carry them. The hub also hands the user's batch profile (backend,
experiments with their defaults, limits, routing and images) to the portal server in one
environment variable when it starts it. The portal's job API (``ink_files_ext.workflow``)
checks the scopes of every request and submits only jobs inside that profile.

Standard library only: both sides import it, and the job side imports nothing of the hub.
"""

from __future__ import annotations

#: submit and cancel batch jobs (implies reading them)
SCOPE_JOBS = "custom:ink:jobs"
#: list jobs, show them, read their output
SCOPE_JOBS_READ = "custom:ink:jobs:read"
#: upload, create, move and delete files (implies reading them)
SCOPE_FILES = "custom:ink:files"
#: list, stat and download files
SCOPE_FILES_READ = "custom:ink:files:read"

#: have the hub sign your own SSH public key (short-lived certificate) to SSH into your sessions
SCOPE_SSH = "custom:ink:ssh"

#: definitions for ``c.JupyterHub.custom_scopes``
CUSTOM_SCOPES = {
    SCOPE_JOBS_READ: {"description": "List your INK batch jobs and read their output."},
    SCOPE_JOBS: {"description": "Submit and cancel INK batch jobs as you.",
                 "subscopes": [SCOPE_JOBS_READ]},
    SCOPE_FILES_READ: {"description": "List and download your files through INK."},
    SCOPE_FILES: {"description": "Upload, move and delete your files through INK.",
                  "subscopes": [SCOPE_FILES_READ]},
    SCOPE_SSH: {"description": "Get short-lived SSH certificates for your own key, to SSH into "
                "your INK sessions."},
}

#: environment variable of the portal session holding the user's batch profile (JSON)
PROFILE_ENV = "INK_WORKFLOW"

#: the named server that serves the job API
PORTAL_SERVER = "portal"


def user_role_scopes() -> list[str]:
    """Scopes of JupyterHub's ``user`` role with INK's: a user may put them on their tokens.

    ``!user`` filters each to the user's own resources."""
    return ["self", *(f"{scope}!user" for scope in CUSTOM_SCOPES)]
