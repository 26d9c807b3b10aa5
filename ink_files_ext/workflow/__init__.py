"""The INK workflow API (``/ink/api/v1``): batch jobs with a token, in the user's own server.

Its own jupyter-server extension (``ink_files_ext.workflow``, enabled by
``jupyter-config/jupyter_server_config.d/ink_files_ext_workflow.json``), separate from the file
manager's. It imports ``ink_spawner`` (JobSpec, backends, scope names) and nothing of the hub.
"""


def _jupyter_server_extension_points():
    from .app import InkWorkflowApp

    return [{"module": "ink_files_ext.workflow.app", "app": InkWorkflowApp}]
