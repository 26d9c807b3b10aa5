"""The jupyter-server extension that carries INK's user-side pages (runs as the user).

- the file manager (``/ink/files``) and its JSON API (``/ink/api/files/...``),
- EShell (``/ink/shell``): xterm.js on jupyter-server's own terminals (terminado),
- share links to the user's files (``/ink/share/...``; the hub relays them to other users).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp, ExtensionAppJinjaMixin
from traitlets import Bool, Dict, Int, List, Unicode, default, validate

from .files.handlers import file_handlers
from .files.page import page_handlers
from .files.roots import Root, Roots
from .files.share_handlers import share_handlers
from .files.shares import ShareStore
from .files.uploads import Uploads
from .shell import shell_handlers

HERE = Path(__file__).parent
ROOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,39}$")


class InkFilesApp(ExtensionAppJinjaMixin, ExtensionApp):
    """INK's user-side pages inside the user's own jupyter-server."""

    name = "ink_files_ext"
    load_other_extensions = True
    static_paths = [str(HERE / "static")]
    template_paths = [str(HERE / "templates")]

    storage_roots = List(
        Dict(),
        help="""Places the file manager shows besides the home directory, e.g.
        ``[{"name": "EOS", "path": "/eos/user", "read_only": false},
        {"name": "CVMFS", "path": "/cvmfs", "read_only": true},
        {"name": "EOS (XRootD)", "url": "root://eos.example.org//eos/user"}]``.
        Nothing outside the home directory and these roots can be reached through the file
        manager, symlinks included; a read-only root is never written through it. XRootD roots
        are listed and streamed (read-only).
        The hub passes the site catalogue's ``site.storage_roots`` here (``INK_STORAGE_ROOTS``).""",
    ).tag(config=True)

    @default("storage_roots")
    def _roots_from_hub(self):
        try:
            roots = json.loads(os.environ.get("INK_STORAGE_ROOTS") or "[]")
        except ValueError:
            self.log.warning("INK_STORAGE_ROOTS is not JSON; no extra storage roots")
            return []
        return roots if isinstance(roots, list) else []

    @validate("storage_roots")
    def _check_roots(self, proposal):
        checked = []
        for i, entry in enumerate(proposal["value"]):
            where = f"storage_roots[{i}]"
            if not isinstance(entry, dict) or set(entry) - {"name", "path", "url", "read_only"}:
                raise ValueError(f"{where}: a dict with name, path or url, and read_only")
            if not isinstance(entry.get("name"), str) or not ROOT_NAME.match(entry["name"]):
                raise ValueError(f"{where}.name: 1-40 letters, digits, space, _ . -")
            if ("path" in entry) == ("url" in entry):
                raise ValueError(f"{where}: give exactly one of path (POSIX) or url (root://)")
            if "path" in entry and not (isinstance(entry["path"], str) and entry["path"].startswith("/")):
                raise ValueError(f"{where}.path: an absolute path")
            if "url" in entry and not (isinstance(entry["url"], str) and entry["url"].startswith("root://")):
                raise ValueError(f"{where}.url: a root:// URL")
            if not isinstance(entry.get("read_only", False), bool):
                raise ValueError(f"{where}.read_only: true or false")
            checked.append(entry)
        return checked

    max_upload_size = Int(
        0,
        help="Largest file, in bytes, one upload may declare (0: no limit beyond the disk's).",
    ).tag(config=True)

    @validate("max_upload_size")
    def _check_max_upload(self, proposal):
        if proposal["value"] < 0:
            raise ValueError("max_upload_size: 0 (no limit) or a number of bytes")
        return proposal["value"]

    allow_anonymous_shares = Bool(
        help="""Share links may be marked "anyone with the link" (no login). The hub's own setting
        (catalogue ``site.anonymous_shares``) must allow it too; it passes it here as
        ``INK_ANONYMOUS_SHARES``.""",
    ).tag(config=True)

    @default("allow_anonymous_shares")
    def _anonymous_from_hub(self):
        return os.environ.get("INK_ANONYMOUS_SHARES") == "1"

    idle_timeout = Int(
        0,
        help="""Seconds without activity (no kernels, no terminals, no requests) after which this
        server stops itself (jupyter-server's ``shutdown_no_activity_timeout``); 0: never. The
        hub sets it for servers whose catalogue app has an ``idle_timeout`` (the portal), as
        ``INK_IDLE_TIMEOUT``.""",
    ).tag(config=True)

    @default("idle_timeout")
    def _idle_timeout_from_hub(self):
        return _seconds_from_env("INK_IDLE_TIMEOUT")

    shell_idle_timeout = Int(
        0,
        help="""Seconds without input or output after which a web shell (EShell terminal) is
        ended by jupyter-server's terminal culler; 0: never. tmux sessions live on. The hub
        passes the catalogue app's ``shell_idle_timeout`` as ``INK_SHELL_IDLE_TIMEOUT``.""",
    ).tag(config=True)

    @default("shell_idle_timeout")
    def _shell_idle_timeout_from_hub(self):
        return _seconds_from_env("INK_SHELL_IDLE_TIMEOUT")

    @validate("idle_timeout", "shell_idle_timeout")
    def _check_timeouts(self, proposal):
        if proposal["value"] < 0:
            raise ValueError(f"{proposal['trait'].name}: 0 (never) or a number of seconds")
        return proposal["value"]

    share_key = Unicode(
        help="""This user's share-link signing key, derived by the hub (``ShareLinks``) so that
        the hub can verify a link before it starts anybody's server. The hub passes it as
        ``INK_SHARE_KEY``; without one, links are signed with a key kept in the share store.""",
    ).tag(config=True)

    @default("share_key")
    def _share_key_from_hub(self):
        return os.environ.get("INK_SHARE_KEY", "")

    def make_roots(self) -> Roots:
        extra = []
        for entry in self.storage_roots:
            if "url" in entry:
                extra.append(Root(entry["name"], "", True, url=entry["url"]))  # listing and streaming only
            else:
                extra.append(Root(entry["name"], os.path.realpath(entry["path"]), bool(entry.get("read_only", False))))
        return Roots(os.path.expanduser("~"), extra)

    def initialize_settings(self):
        # A server the hub gave an idle timeout (the portal) stops itself when nobody uses it:
        # jupyter-server's own check (no kernels, no terminals, no requests), once a minute.
        if self.idle_timeout:
            self.serverapp.shutdown_no_activity_timeout = self.idle_timeout
            self.log.info("INK: this server stops after %s s without activity", self.idle_timeout)
        # One forgotten shell should not keep the server (and its resources) alive: jupyter-server's
        # terminal manager ends terminals with no input or output for this long.
        shell_timeout = self.shell_idle_timeout
        if shell_timeout:
            terminals = self.serverapp.config.TerminalManager
            terminals.cull_inactive_timeout = shell_timeout
            terminals.cull_interval = max(1, min(60, shell_timeout // 2))
            manager = self.serverapp.web_app.settings.get("terminal_manager")
            if manager is not None:  # the terminals extension loaded first
                manager.cull_inactive_timeout = terminals.cull_inactive_timeout
                manager.cull_interval = terminals.cull_interval
            self.log.info("INK: shells end after %s s without input or output", shell_timeout)
        self.settings.update({
            "ink_files_roots": self.make_roots(),
            "ink_files_uploads": Uploads(self.max_upload_size),
            "ink_files_shares": ShareStore(os.path.expanduser("~/.ink/shares.json"),
                                           key=self.share_key or None),
            "ink_files_anonymous_shares": self.allow_anonymous_shares,
        })

    def initialize_handlers(self):
        # file_handlers() ends with the API's catch-all 404: it comes last
        self.handlers.extend(shell_handlers() + page_handlers() + share_handlers() + file_handlers())


def _seconds_from_env(name: str) -> int:
    """A whole number of seconds the hub passed in the environment (0 if none or malformed)."""
    value = os.environ.get(name, "")
    return int(value) if value.isascii() and value.isdigit() else 0
