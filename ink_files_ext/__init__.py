"""ink_files_ext: INK's user-side pages, a jupyter-server ExtensionApp (job/portal side).

The file manager (``/ink/files``, API ``/ink/api/files/``): browse, transfer (resumable uploads,
Range downloads, streamed zips), previews (image, PDF, text, FITS, ROOT), share links, storage
roots (POSIX, XRootD); and EShell (``/ink/shell``): xterm.js tabs on jupyter-server terminals.
It runs as the user, inside the user's own server, and never as anyone else. Imports nothing
of the hub.
"""


def _jupyter_server_extension_points():
    from .app import InkFilesApp

    return [{"module": "ink_files_ext.app", "app": InkFilesApp}]
