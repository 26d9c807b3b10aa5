"""ink_proxy_ext: the interactive apps behind jupyter-server-proxy (job side).

Will hold one module per app (``vscode``, ``desktop``, ``rootbrowse``, ...), each registered under
the ``jupyter_serverproxy_servers`` entry point and listening on a 0600 unix socket, with its
launcher tile and icon. JupyterLab itself (the ``jupyter`` app) needs no proxy entry.
"""
