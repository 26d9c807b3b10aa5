"""The one config loader: built-in defaults → deployment profile → site overlay.

Layers are YAML files merged in order (mappings merge key by key; lists and scalars replace).
Every key remembers the file that set it last, so a validation error names the file, the key
and the reason. A file has two parts: the catalogue (data: experiments, apps, images, ...) and
an optional ``hub:`` mapping of traitlets configuration (``JupyterHub``, ``InkSpawner``,
``SlurmBackend``, an authenticator class, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import yaml
from pydantic import ValidationError

from .model import Catalogue

BUILTIN = "builtin:defaults.yaml"
DEMO = "builtin:demo.yaml"
_CLASS_NAME = re.compile(r"^[A-Z][A-Za-z0-9_]*$")


class CatalogueError(ValueError):
    """The site configuration is invalid; ``problems`` are 'file: key: reason' lines."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid INK site configuration:\n  " + "\n  ".join(problems))


@dataclass
class SiteConfig:
    catalogue: Catalogue
    hub_config: dict
    merged: dict
    sources: list[str] = field(default_factory=list)


def _read_layer(path: str) -> dict:
    if path.startswith("builtin:"):
        text = files("ink_hub.catalogue").joinpath(path.removeprefix("builtin:")).read_text()
    else:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise CatalogueError([f"{path}: cannot read: {e.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f"line {where.line + 1}: " if where else ""
        raise CatalogueError([f"{path}: {line}not valid YAML ({getattr(e, 'problem', e)})"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CatalogueError([f"{path}: the top level must be a mapping"])
    return data


def deep_merge(base: dict, layer: dict, source: str, origin: dict, prefix: tuple = ()) -> dict:
    """Merge ``layer`` into ``base`` (in place); record in ``origin`` who set each key."""
    for key, value in layer.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value, source, origin, path)
        else:
            base[key] = value
            for known in [p for p in origin if p[: len(path)] == path]:
                del origin[known]
            _record(value, path, source, origin)
    return base


def _record(value, path: tuple, source: str, origin: dict) -> None:
    origin[path] = source
    if isinstance(value, dict):
        for key, item in value.items():
            _record(item, (*path, key), source, origin)


def _source_of(origin: dict, loc: tuple) -> str:
    for n in range(len(loc), 0, -1):
        if loc[:n] in origin:
            return origin[loc[:n]]
    return "(merged configuration)"


def load_site(paths: list[str] | tuple[str, ...] = ()) -> SiteConfig:
    """Load and validate the layers (built-in defaults first); raise CatalogueError."""
    sources = [BUILTIN, *[str(p) for p in paths if str(p)]]
    merged: dict = {}
    origin: dict = {}
    for source in sources:
        deep_merge(merged, _read_layer(source), source, origin)
    hub_config = merged.pop("hub", {}) or {}
    problems = []
    if not isinstance(hub_config, dict):
        problems.append(f"{_source_of(origin, ('hub',))}: hub: must be a mapping of class names")
    else:
        for name, section in hub_config.items():
            if not _CLASS_NAME.match(str(name)) or not isinstance(section, dict):
                problems.append(f"{_source_of(origin, ('hub', name))}: hub.{name}: must be a class "
                                "name mapping to its settings")
    try:
        catalogue = Catalogue.model_validate(merged)
    except ValidationError as e:
        for err in e.errors():
            loc = tuple(err["loc"])
            reason = err["msg"].removeprefix("Value error, ")
            if loc:
                problems.append(f"{_source_of(origin, loc)}: {'.'.join(map(str, loc))}: {reason}")
                continue
            # cross-reference checks of the whole catalogue report "key.path: reason; ..."
            for part in reason.split("; "):
                key, _, why = part.partition(": ")
                problems.append(f"{_source_of(origin, tuple(key.split('.')))}: {key}: {why}")
        catalogue = None
    if problems:
        raise CatalogueError(problems)
    merged_out = dict(merged)
    if hub_config:
        merged_out["hub"] = hub_config
    return SiteConfig(catalogue=catalogue, hub_config=hub_config, merged=merged_out, sources=sources)
