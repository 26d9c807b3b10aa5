"""ink_files_ext: the file manager and web shell, a jupyter-server ExtensionApp (job/portal side).

Will hold the file manager page and API, previews (image, PDF, text, ROOT via JSROOT, FITS),
share links, the EShell page on jupyter-server terminals, and storage adapters (POSIX, XRootD).
It runs as the user, inside the user's own server, and never as anyone else.
"""
