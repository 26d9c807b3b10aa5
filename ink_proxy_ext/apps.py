"""What each app is, in one table: server name, URL, title, icon, description.

The hub's catalogue (ink_hub/catalogue/defaults.yaml) lists the same apps for its tiles; a test
keeps the two in step. The job side reads this table for the JupyterLab launcher entries.
"""

from __future__ import annotations

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
