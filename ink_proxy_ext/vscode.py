"""VS Code in the session: npm code-server on a 0600 unix socket, behind ``/vscode/``.

code-server runs with ``--auth none``: jupyter-server (the hub's OAuth) is the only way in, and
the unix socket in jupyter-server-proxy's private directory, mode 0600, keeps other users of the
node out (a TCP port would let anyone on the node in). Update check, telemetry and the
workspace-trust prompt are off; settings and extensions live under the user's home, so they
follow the user from node to node.
"""

from __future__ import annotations

import json
import os
import pwd

from .apps import APPS, CODE_SERVER_FALLBACK, find_program, private_dir

APP = APPS["vscode"]


#: first-run settings: no welcome walkthrough, nothing that phones home (the user may change them)
DEFAULT_SETTINGS = {
    "workbench.startupEditor": "none",
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoCheckUpdates": False,
    "security.workspace.trust.enabled": False,
}


def user_data_dir() -> str:
    """The user's VS Code data under ~/.local/share/ink, with our settings on first use."""
    path = private_dir("vscode", "user-data")
    settings = os.path.join(path, "User", "settings.json")
    if not os.path.exists(settings):
        os.makedirs(os.path.dirname(settings), mode=0o700, exist_ok=True)
        with open(settings, "w") as f:
            json.dump(DEFAULT_SETTINGS, f, indent=2)
    return path


def command() -> list[str]:
    """code-server's argv; resolved when the app starts so a missing binary is a clear error."""
    program = find_program("code-server", "INK_CODE_SERVER", CODE_SERVER_FALLBACK)
    folder = os.environ.get("INK_VSCODE_FOLDER") or os.path.expanduser("~")
    return [
        program,
        "--auth", "none",
        "--socket", "{unix_socket}",
        "--socket-mode", "0600",
        "--disable-telemetry",
        "--disable-update-check",
        "--disable-workspace-trust",
        "--disable-getting-started-override",
        "--user-data-dir", user_data_dir(),
        "--extensions-dir", private_dir("vscode", "extensions"),
        folder,
    ]


def environment() -> dict:
    """The user's login shell for VS Code's terminals (a batch job's environment may lack SHELL)."""
    return {"SHELL": os.environ.get("SHELL") or pwd.getpwuid(os.getuid()).pw_shell or "/bin/sh"}


def setup_vscode() -> dict:
    """jupyter-server-proxy entry (``jupyter_serverproxy_servers: vscode``)."""
    return {
        "command": command,
        "environment": environment,
        "unix_socket": True,
        "timeout": 60,
        "new_browser_tab": True,
        "launcher_entry": {"title": APP.title, "icon_path": APP.icon_path, "category": "Notebook"},
    }
