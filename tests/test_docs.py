"""The documentation builds without a single warning, and its configuration reference is the code's."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ink_hub.catalogue.load import CatalogueError, load_site
from ink_spawner.backends.htcondor import HTCondorBackend
from ink_spawner.backends.local import LocalBackend
from ink_spawner.backends.slurm import SlurmBackend
from ink_spawner.spawner import InkSpawner

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
EXAMPLES = DOCS / "admin" / "examples"


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
    for doc in ("index", "admin/install", "admin/catalogue", "admin/spawner", "admin/htcondor",
                "admin/security",
                "developer/architecture", "developer/backends", "developer/testing"):
        assert (out / f"{doc}.html").exists(), doc


# ---- the site catalogue page: its examples are valid, its error output is the loader's -------


def _problems(files: list[str]) -> list[str]:
    with pytest.raises(CatalogueError) as e:
        load_site(files)
    return e.value.problems


def test_catalogue_examples_validate(tmp_path):
    for overlay in ("ihep-site.yaml", "ihep-condor-site.yaml"):
        site = load_site([str(EXAMPLES / "ihep-profile.yaml"), str(EXAMPLES / overlay)])
        assert list(site.catalogue.experiments) == ["juno", "besiii", "lhaaso", "herd"], overlay
    backend = load_site([str(EXAMPLES / "ihep-profile.yaml"), str(EXAMPLES / "ihep-condor-site.yaml")])
    assert backend.hub_config["InkSpawner"]["backend"] == "htcondor"
    # the single-file Slurm example of the spawner page
    page = (DOCS / "admin" / "spawner.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", page[page.index("## A Slurm site example"):], re.S).group(1)
    path = tmp_path / "site.yaml"
    path.write_text(block)
    assert set(load_site([str(path)]).catalogue.experiments) == {"juno", "lhaaso"}


def test_catalogue_page_shows_the_loaders_current_errors(tmp_path, monkeypatch):
    page = (DOCS / "admin" / "catalogue.md").read_text()
    shutil.copy(EXAMPLES / "ihep-profile.yaml", tmp_path)
    shutil.copy(EXAMPLES / "broken-site.yaml", tmp_path)
    monkeypatch.chdir(tmp_path)
    broken = _problems(["ihep-profile.yaml", "broken-site.yaml"])
    assert len(broken) == 5
    overlays = {
        "experiments:\n  besiii:\n    images: [alma9]\n": 1,
        "experiments:\n  besiii:\n    images: [centos7, sl6]\noverrides:\n  zhaolei:\n"
        "    experiments: [herd, cepc]\n": 2,
        "site:\n  name: x\n bad: [\n": 1,
    }
    others = []
    for text, count in overlays.items():
        Path("site.yaml").write_text(text)
        problems = _problems(["ihep-profile.yaml", "site.yaml"])
        assert len(problems) == count, problems
        others += problems
    for problem in broken + others + _problems(["nosuch.yaml"]):
        assert problem in page, f"catalogue.md does not show the current error: {problem}"
    assert "ihep-profile.yaml: experiments.besiii: default_image 'centos7' is not in images" in others


def test_no_page_describes_the_old_python_site_config():
    for page in DOCS.rglob("*.md"):
        if "_build" not in page.parts:
            assert "INK_HUB_SITE_CONFIG" not in page.read_text(), page
