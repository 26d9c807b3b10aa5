# INK Hub configuration entry point: keep this file thin.
#
#   jupyterhub -f jupyterhub_config.py            # the embedded demo (local backend, demo users)
#
# A site puts its own settings in a file named by INK_HUB_SITE_CONFIG (plain JupyterHub
# config syntax for now; the layered site catalogue replaces it with the profiles work).
import os

from ink_hub.config import configure, configure_demo

c = get_config()  # noqa: F821
configure(c)
site_config = os.environ.get("INK_HUB_SITE_CONFIG")
if site_config:
    load_subconfig(site_config)  # noqa: F821
else:
    configure_demo(c)
