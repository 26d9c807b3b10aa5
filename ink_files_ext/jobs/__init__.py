"""The INK job API (``/ink/api/v1``): batch jobs with a token, in the user's own server.

Its own jupyter-server extension (``ink_files_ext.jobs``, enabled by
``jupyter-config/jupyter_server_config.d/ink_files_ext_jobs.json``), beside the file manager's
in the package of the user's services. Requests are checked by the one validator
(:mod:`ink_spawner.validator`) against the profile the hub hands the portal, and submitted
through the same backend interface as sessions. Imports ``ink_spawner`` and nothing of the hub.

- :mod:`.app`: the ExtensionApp (settings as traitlets);
- :mod:`.handlers`: the REST handlers;
- :mod:`.service`: a checked request → a wrapped JobSpec → the backend; states, cancel;
- :mod:`.store`: one private directory per job (record, stdout, stderr, exit status).
"""


def _jupyter_server_extension_points():
    from .app import InkJobsApp

    return [{"module": "ink_files_ext.jobs.app", "app": InkJobsApp}]
