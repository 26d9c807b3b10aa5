"""A template INK Hub experiment service (copy it to start IHEP's Monitor, DAQ Shift, ...).

The hub finds :data:`plugin` through the ``ink_hub.services`` entry point (pyproject.toml),
starts :mod:`ink_service_example.app` as a JupyterHub service at ``/services/example/`` when an
experiment of the catalogue lists ``example`` in its ``services``, and shows its tile to that
experiment's members.
"""

import sys

from ink_hub.service_plugins import ServicePlugin

plugin = ServicePlugin(
    name="example",
    title="Example Monitor",
    description="A template experiment service: who you are and which experiments grant it",
    kind="hub-service",
    command=(sys.executable, "-m", "ink_service_example.app"),
    port=10181,
)
