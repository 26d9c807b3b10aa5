"""Where ``ink login`` keeps the hub URL and token: one JSON file, mode 0600.

``$INK_CONFIG`` names the file (default ``$XDG_CONFIG_HOME/ink/config.json``, i.e.
``~/.config/ink/config.json``). ``$INK_HUB_URL`` and ``$INK_TOKEN`` override it, so a
workflow can run without a stored login (e.g. with a token from its own secret store).
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def config_path() -> Path:
    if os.environ.get("INK_CONFIG"):
        return Path(os.environ["INK_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "ink" / "config.json"


def load() -> dict:
    data: dict = {}
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        raise OSError(f"cannot read {path}: {e}") from None
    if os.environ.get("INK_HUB_URL"):
        data["hub"] = os.environ["INK_HUB_URL"]
        data.pop("user", None)
    if os.environ.get("INK_TOKEN"):
        data["token"] = os.environ["INK_TOKEN"]
        data.pop("user", None)
    return data


def save(data: dict) -> Path:
    """Write the file 0600 (its directory 0700) without a moment where others could read it."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def remove() -> bool:
    try:
        config_path().unlink()
        return True
    except FileNotFoundError:
        return False
