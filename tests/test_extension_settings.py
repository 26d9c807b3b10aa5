"""The user server's INK settings are traitlets of its extension apps: the hub's environment
gives their defaults, a site's Jupyter config overrides them, bad values are refused by name."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from ink_files_ext.app import InkFilesApp


def test_settings_come_from_the_hub_environment(monkeypatch):
    monkeypatch.setenv("INK_IDLE_TIMEOUT", "3600")
    monkeypatch.setenv("INK_SHELL_IDLE_TIMEOUT", "900")
    monkeypatch.setenv("INK_SHARE_KEY", "k" * 43)
    monkeypatch.setenv("INK_ANONYMOUS_SHARES", "1")
    monkeypatch.setenv("INK_STORAGE_ROOTS", '[{"name": "CVMFS", "path": "/cvmfs", "read_only": true}]')
    app = InkFilesApp()
    assert (app.idle_timeout, app.shell_idle_timeout, app.share_key) == (3600, 900, "k" * 43)
    assert app.allow_anonymous_shares is True
    assert app.storage_roots == [{"name": "CVMFS", "path": "/cvmfs", "read_only": True}]


def test_config_overrides_the_environment_and_malformed_values_are_ignored(monkeypatch):
    monkeypatch.setenv("INK_IDLE_TIMEOUT", "\u00b2")  # not ASCII digits: no timeout rather than a crash
    monkeypatch.setenv("INK_SHELL_IDLE_TIMEOUT", "900")
    app = InkFilesApp(config=Config({"InkFilesApp": {"shell_idle_timeout": 60}}))
    assert (app.idle_timeout, app.shell_idle_timeout) == (0, 60)
    with pytest.raises(ValueError, match="idle_timeout: 0 \\(never\\) or a number of seconds"):
        InkFilesApp(idle_timeout=-1)


def test_nothing_reads_the_environment_outside_the_traits():
    """ink_files_ext/app.py reads INK_* variables only in @default methods."""
    import ast
    import inspect

    import ink_files_ext.app as module

    tree = ast.parse(inspect.getsource(module))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in ("initialize_settings", "initialize_handlers",
                                                                "make_roots"):
            assert "environ" not in ast.unparse(node), node.name
