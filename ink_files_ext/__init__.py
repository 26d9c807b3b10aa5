"""ink_files_ext: INK's user-side pages, a jupyter-server ExtensionApp (job/portal side).

Now: the EShell page (``/ink/shell``): xterm.js on jupyter-server terminals. To come: the file
manager page and API, previews (image, PDF, text, ROOT via JSROOT, FITS), share links, and
storage adapters (POSIX, XRootD). It runs as the user, inside the user's own server, and never
as anyone else. Imports nothing of the hub.
"""


def _jupyter_server_extension_points():
    from .app import InkFilesApp

    return [{"module": "ink_files_ext.app", "app": InkFilesApp}]
