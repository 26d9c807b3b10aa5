"""INK's token scopes: what the APIs of the user's server check, and what the hub grants.

The file API (``/ink/api/files/``) and the job API (``/ink/api/v1``) of the user's server
check these scopes on every token request (:mod:`ink_files_ext.api_auth`), the hub's SSH
certificate API ``custom:ink:ssh`` (:mod:`ink_hub.ssh_api`); the hub defines them
in ``c.JupyterHub.custom_scopes`` and grants them, on the user's own resources, to the ``user``
role (:mod:`ink_hub.scopes`), so a token a user creates on the token page may carry them. The
contract lives here, next to the handlers that enforce it. Standard library only: the hub
imports it without loading jupyter-server.
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


def user_role_scopes() -> list[str]:
    """Scopes of JupyterHub's ``user`` role with INK's: a user may put them on their tokens.

    ``!user`` filters each to the user's own resources."""
    return ["self", *(f"{scope}!user" for scope in CUSTOM_SCOPES)]
