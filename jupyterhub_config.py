# INK Hub configuration entry point: keep this file thin.
#
#   jupyterhub -f jupyterhub_config.py      # the embedded demo (local backend, demo users)
#
# A site names its YAML layers (deployment profile, then site overlay) in INK_HUB_SITE,
# separated by ':'; they are merged over the built-in defaults and validated at start.
# Check them first with:  ink-hub config check profile.yaml site.yaml
import os

from ink_hub.catalogue.load import DEMO
from ink_hub.config import configure, configure_demo

c = get_config()  # noqa: F821
site_files = [p for p in os.environ.get("INK_HUB_SITE", "").split(os.pathsep) if p]
configure(c, site_files or [DEMO])
if not site_files:
    configure_demo(c)
