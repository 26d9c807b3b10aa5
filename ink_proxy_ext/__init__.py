"""ink_proxy_ext: the interactive apps of an INK session, behind jupyter-server-proxy (job side).

One module per app, each registered under the ``jupyter_serverproxy_servers`` entry point
(see pyproject.toml), listening on a 0600 unix socket in a private directory and never on a
TCP port, with a JupyterLab launcher tile and icon:

- :mod:`ink_proxy_ext.vscode` — VS Code (npm code-server) at ``/vscode/``;
- :mod:`ink_proxy_ext.desktop` — a VNC desktop (TigerVNC + openbox + xterm) shown by noVNC at
  ``/desktop/``, the RFB stream proxied as a websocket from ``/desktop-vnc/``;
- :mod:`ink_proxy_ext.rootbrowse` — JSROOT at ``/rootbrowse/`` reading the user's ROOT files
  through jupyter-server's authenticated ``/files/`` handler (HTTP Range).

JupyterLab itself (the ``jupyter`` app) needs no proxy entry. The hub's tiles come from the
site catalogue (``ink_hub/catalogue/defaults.yaml``), whose app names and default URLs match
:data:`ink_proxy_ext.apps.APPS`. This package also is a small jupyter-server extension that
serves the desktop page and the front-end assets (noVNC, JSROOT; copied from npm by
scripts/build-assets). Imports nothing of the hub.
"""


def _jupyter_server_extension_points():
    return [{"module": "ink_proxy_ext.extension"}]
