"""What each app is, in one table: server name, URL, title, icon, description.

The hub's catalogue (ink_hub/catalogue/defaults.yaml) lists the same apps for its tiles; a test
keeps the two in step. The job side reads this table for the JupyterLab launcher entries.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
ICONS = HERE / "icons"
STATIC = HERE / "static"


@dataclass(frozen=True)
class AppInfo:
    name: str
    title: str
    default_url: str
    description: str

    @property
    def icon_path(self) -> str:
        return str(ICONS / f"{self.name}.svg")


APPS = {
    "jupyter": AppInfo("jupyter", "JupyterLab", "/lab",
                       "Notebooks, consoles and terminals in your session."),
    "vscode": AppInfo("vscode", "VS Code", "/vscode/",
                      "The VS Code editor (code-server) with a terminal, on a worker node."),
    "desktop": AppInfo("desktop", "Desktop", "/desktop/",
                       "A Linux desktop (VNC) with a terminal, for X11 programs such as ROOT's TBrowser."),
    "rootbrowse": AppInfo("rootbrowse", "ROOT Browser", "/rootbrowse/",
                          "Browse and draw the histograms and trees in your ROOT files (JSROOT)."),
    # no web UI of its own: SSH from a laptop (ink ssh-config) and a web terminal (EShell)
    "enode": AppInfo("enode", "Enode", "/ink/shell",
                     "A shell session on a worker node: SSH in from your laptop (VS Code Remote-SSH, "
                     "scp, rsync) or use the web terminal."),
}


def find_program(name: str, env_var: str, *fallbacks: str) -> str:
    """The program to run: ``$env_var`` if set, else ``name`` on PATH, else a fallback path.

    Raises RuntimeError naming what is missing, which jupyter-server-proxy shows to the user.
    """
    explicit = os.environ.get(env_var)
    if explicit:
        return explicit
    found = shutil.which(name)
    if found:
        return found
    for path in fallbacks:
        if os.access(path, os.X_OK):
            return path
    raise RuntimeError(f"{name} is not installed on this node (set ${env_var} or run scripts/install-apps)")


#: where scripts/install-apps links code-server when it is not on PATH
CODE_SERVER_FALLBACK = "/opt/ink-apps/node_modules/.bin/code-server"

#: what each app needs on the machine it runs on: (what, how to find it, how to install it)
STACKS: dict[str, list[tuple[str, tuple, str]]] = {
    "jupyter": [("JupyterLab", ("module", "jupyterlab"), "pip install jupyterlab")],
    "vscode": [("code-server", ("program", "code-server", "INK_CODE_SERVER", CODE_SERVER_FALLBACK),
                "scripts/install-apps")],
    "desktop": [("Xvnc (TigerVNC)", ("program", "Xvnc", "INK_XVNC"), "scripts/install-apps"),
                ("openbox", ("program", "openbox", "INK_WINDOW_MANAGER"), "scripts/install-apps"),
                ("xterm", ("program", "xterm", ""), "scripts/install-apps")],
    "rootbrowse": [("JSROOT", ("file", "jsroot/modules/gui.mjs"), "scripts/build-assets")],
    "enode": [("sshd (OpenSSH server)", ("program", "sshd", "INK_SSHD", "/usr/sbin/sshd", "/usr/local/sbin/sshd"),
               "apt install openssh-server")],
}


def stack_programs(name: str) -> list[tuple[str, str | None]]:
    """The programs of app ``name``'s stack, as (program, fallback path or None): what
    ``ink-hub doctor``'s test job looks for on a worker node (modules and the front-end files
    ship with the Python package, so they are not node programs)."""
    return [(args[0], args[2] if len(args) > 2 else None)
            for _, (kind, *args), _ in STACKS.get(name, []) if kind == "program"]


def missing_stack(name: str) -> list[tuple[str, str]]:
    """What app ``name`` lacks on this machine, as (what, how to install it); [] when complete.

    The same look-ups the apps make when they start (``find_program``, the JSROOT assets), so a
    hub that runs its sessions on this machine (the demo's local backend) offers only apps that
    start. An app INK does not ship (a site's own) is assumed complete.
    """
    missing = []
    for what, probe, install in STACKS.get(name, []):
        kind, *args = probe
        if kind == "module":
            found = importlib.util.find_spec(args[0]) is not None
        elif kind == "file":
            found = (STATIC / args[0]).is_file()
        else:
            program, env_var, *fallbacks = args
            try:
                path = find_program(program, env_var or f"INK_{program.upper()}", *fallbacks)
            except RuntimeError:
                path = ""
            found = bool(path) and os.access(shutil.which(path) or path, os.X_OK)
        if not found:
            missing.append((what, install))
    return missing


def private_dir(*parts: str) -> str:
    """A directory of the user's own under ~/.local/share/ink (0700), created if needed."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    os.makedirs(base, exist_ok=True)
    path = base
    for part in ("ink", *parts):  # makedirs' mode would not reach the intermediate directories
        path = os.path.join(path, part)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    return path
