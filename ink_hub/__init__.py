"""ink_hub: everything of INK that runs inside the JupyterHub process.

Now: :func:`ink_hub.config.configure` (wires InkSpawner and the session port endpoint into a
hub) and the endpoint itself (:mod:`ink_hub.session_api`). To come: the layered site catalogue
(experiments, apps, images, presets, limits), group/experiment mapping, credentials in
auth_state, portal pages and hub-side APIs. It never starts processes or talks to schedulers.
"""
