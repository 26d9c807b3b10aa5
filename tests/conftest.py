"""Shared fixtures: real Unix users, the real dev Slurm, and real hubs."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .harness import (REPO, TEST_CATALOGUE, TEST_HUB_ID, TEST_USERS, TIMEOUT_SCALE, Hub,  # noqa: F401
                      ensure_unix_users, scaled)


@pytest.fixture(scope="session")
def unix_users():
    ensure_unix_users()


@pytest.fixture(scope="session")
def dev_slurm():
    """The real single-node Slurm from scripts/dev-slurm (started if it is not up)."""
    if shutil.which("sinfo") is None or subprocess.run(["sinfo"], capture_output=True).returncode:
        subprocess.run([str(REPO / "scripts" / "dev-slurm"), "start"], check=True)
    return True


def squeue_active(user: str | None = None) -> dict[str, str]:
    """job id -> state of the user's jobs that are not finished (straight from squeue).

    Jobs tagged with another hub's id (comment ``hub=<id>``: a concurrent test run's or a
    benchmark's sessions, on the shared dev Slurm) are not this run's and are left out, so a
    test's "nothing left" holds whatever else runs on the cluster."""
    argv = ["squeue", "--noheader", "--format=%i|%T|%k"]
    if user:
        argv.append(f"--user={user}")
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    active = {}
    for line in out.splitlines():
        job_id, state, comment = line.split("|", 2)
        tags = dict(item.partition("=")[::2] for item in comment.split(","))
        if tags.get("hub") and tags["hub"] != TEST_HUB_ID:
            continue
        if state not in ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "COMPLETING"):
            active[job_id] = state
    return active


def cancel_test_jobs() -> None:
    """Cancel leftover INK jobs of the test users (and nobody else's): sessions of this test
    run's hubs (comment hub=TEST_HUB_ID; another run's sessions are left alone) and job-API jobs."""
    out = subprocess.run(["squeue", "--noheader", "--format=%i|%u|%j|%k"], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        job_id, user, name, comment = line.split("|", 3)
        tags = dict(item.partition("=")[::2] for item in comment.split(","))
        ours = tags.get("hub") == TEST_HUB_ID or tags.get("ink") == "workflow"
        if user in TEST_USERS and name.startswith("ink-") and ours:
            subprocess.run(["scancel", job_id])


# TIMEOUT_SCALE and scaled() live in harness.py (the hub helpers scale their deadlines too);
# a timing assertion uses scaled() for its slack, never a bare number of seconds.
#: deadline (ms) of every browser wait and action: pages wait on states and events
UI_TIMEOUT = int(120_000 * TIMEOUT_SCALE / 4)


def wait_for(predicate, timeout: float = 30, interval: float = 0.1, message: str = "condition"):
    """Poll ``predicate`` until it is true; fail after ``timeout`` × TIMEOUT_SCALE seconds."""
    timeout *= TIMEOUT_SCALE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{message} not reached within {timeout}s")


def job_pids(job_id: str) -> list[int]:
    """Processes of a Slurm job (scontrol listpids), empty once the job is gone."""
    r = subprocess.run(["scontrol", "listpids", job_id], capture_output=True, text=True)
    pids = []
    for line in r.stdout.splitlines()[1:]:
        first = line.split()[0] if line.split() else ""
        if first.isdigit():
            pids.append(int(first))
    return [p for p in pids if os.path.exists(f"/proc/{p}")]


SLURM_HUB_CONFIG = """
c.SlurmBackend.poll_interval = 2
c.SlurmBackend.spawn_poll_interval = 0.5
c.InkSpawner.poll_interval = 2
"""


@pytest.fixture(scope="module")
def slurm_hub(tmp_path_factory, unix_users, dev_slurm):
    hub = Hub(tmp_path_factory.mktemp("slurm-hub"), SLURM_HUB_CONFIG, backend="slurm").start()
    yield hub
    for user in ("alice", "bob", "carol", "dave", "erin"):
        for name in list(hub.user_model(user).get("servers", {})):
            hub.api("DELETE", f"/users/{user}/servers/{name}")
    hub.stop()
    cancel_test_jobs()


@pytest.fixture
def hub_factory(tmp_path, unix_users):
    """Start extra hubs with their own config; all are stopped at the end of the test."""
    hubs = []

    def make(extra_config: str = "", backend: str = "local", workdir: Path | None = None,
             catalogue: str = TEST_CATALOGUE) -> Hub:
        hub = Hub(workdir or tmp_path / f"hub{len(hubs)}", extra_config, backend=backend,
                  catalogue=catalogue)
        hubs.append(hub)
        return hub.start()

    yield make
    for hub in hubs:
        if hub.proc is not None:
            for user in ("alice", "bob", "carol", "dave", "erin"):
                for name in list(hub.user_model(user).get("servers", {})):
                    hub.api("DELETE", f"/users/{user}/servers/{name}")
        hub.stop()


# ---- browsers (Playwright with the system's Chromium; its own download does not work here) ----

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class PatientBrowser:
    """A Playwright browser whose contexts wait up to UI_TIMEOUT for every action, navigation
    and state (Playwright's default is 30 s, too short for a cold JupyterLab on a loaded box)."""

    def __init__(self, browser):
        self._browser = browser

    def new_context(self, **kwargs):
        context = self._browser.new_context(**kwargs)
        context.set_default_timeout(UI_TIMEOUT)
        context.set_default_navigation_timeout(UI_TIMEOUT)
        return context

    def new_page(self, **kwargs):
        return self.new_context(**kwargs).new_page()

    def __getattr__(self, name):
        return getattr(self._browser, name)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
        yield PatientBrowser(b)
        b.close()
