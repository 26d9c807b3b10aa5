"""The documentation builds without a single warning, and its configuration reference is the code's."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from ink_spawner.backends.htcondor import HTCondorBackend
from ink_spawner.backends.local import LocalBackend
from ink_spawner.backends.slurm import SlurmBackend
from ink_spawner.spawner import InkSpawner

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def _flat(text: str) -> str:
    return " ".join(text.split())


def _section(page: str, heading: str) -> str:
    """The text of one '### Class.option' entry of the generated page."""
    start = page.index(f"\n### {heading}\n")
    end = page.find("\n### ", start + 1)
    return page[start:] if end < 0 else page[start:end]


def test_docs_build_without_warnings_and_reference_matches_code(tmp_path):
    out = tmp_path / "html"
    r = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", str(DOCS), str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, f"sphinx-build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"

    page = (DOCS / "reference" / "config.md").read_text()
    for cls in ("LocalBackend", "SlurmBackend", "HTCondorBackend"):
        assert f"\n## {cls}\n" in page, cls
    assert 'Selected with `c.InkSpawner.backend = "htcondor"`.' in page
    for name in ("InkSpawner.backend", "InkSpawner.resolver", "SlurmBackend.poll_interval",
                 "SlurmBackend.host_template", "LocalBackend.stop_grace",
                 "HTCondorBackend.extra_submit", "HTCondorBackend.schedd_name"):
        assert f"\n### {name}\n" in page, name
    # every configurable option is documented: InkSpawner's own ones, every backend option
    for name in InkSpawner.class_own_traits(config=True):
        assert f"\n### InkSpawner.{name}\n" in page, name
    for cls in (LocalBackend, SlurmBackend, HTCondorBackend):
        for name in cls.class_traits(config=True):
            assert f"\n### {cls.__name__}.{name}\n" in page, f"{cls.__name__}.{name}"

    # help texts come from the traits themselves
    trait = SlurmBackend.class_traits()["command_timeout"]
    assert _flat(inspect.cleandoc(trait.help)) in _flat(page)
    trait = HTCondorBackend.class_traits()["env_dir"]
    assert _flat(inspect.cleandoc(trait.help)) in _flat(page)
    # a default computed when the hub starts is shown as its expression
    assert "computed when the hub starts" in _section(page, "HTCondorBackend.submit_helper")

    # JupyterHub options whose default InkSpawner changes show InkSpawner's default, not JupyterHub's
    spawner = InkSpawner()
    for name in ("poll_interval", "start_timeout"):
        entry = _section(page, f"InkSpawner.{name}")
        assert f"**Default:** `{getattr(spawner, name)!r}`" in entry, entry
    assert f"**Default:** `{LocalBackend().poll_interval!r}`" in _section(page, "LocalBackend.poll_interval")

    html = (out / "reference" / "config.html").read_text()
    assert "SlurmBackend.poll_interval" in html and "InkSpawner.backend" in html
    assert "HTCondorBackend.concurrency_limit_template" in html
    for doc in ("index", "admin/install", "admin/spawner", "admin/htcondor", "admin/security",
                "developer/architecture", "developer/backends", "developer/testing"):
        assert (out / f"{doc}.html").exists(), doc
