"""Site metrics against a real hub: a session is spawned, then /hub/metrics (scope read:metrics)
has INK's series with plausible values; the Grafana dashboard asks only for series the hub
exports; the admins' statistics page (headless Chromium) and the panel show the session's Job
Lens figures; a session's figures are readable by its owner and admins, not by bob."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .conftest import wait_for
from .harness import REPO
from .test_browser_pages import login, shot

pytestmark = [pytest.mark.hub]

DASHBOARD = REPO / "docs" / "admin" / "grafana-ink-hub.json"
EXTRA = """
c.Authenticator.admin_users = {"carol"}
c.InkSpawner.lens_interval = 1
c.LocalBackend.queue_sample_interval = 1
c.JupyterHub.load_roles.append({"name": "metrics-reader", "services": ["ink-test"], "scopes": ["read:metrics"]})
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory, unix_users):
    from .harness import Hub

    h = Hub(tmp_path_factory.mktemp("metrics-hub"), EXTRA, backend="local").start()
    h.start_and_wait("alice", "jupyter", {"experiment": "default"})
    yield h
    for user in ("alice", "bob", "carol"):
        for name in list(h.user_model(user).get("servers", {})):
            h.api("DELETE", f"/users/{user}/servers/{name}")
    h.stop()


def scrape(hub) -> dict:
    """{family name: [(sample name, labels, value)]} of one GET /hub/metrics."""
    r = hub.session.get(f"{hub.url}/hub/metrics", timeout=30)
    assert r.status_code == 200, r.text
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(r.text)}


def value(families, sample, **labels) -> float | None:
    for family in families.values():
        for name, have, v in family:
            if name == sample and all(have.get(k) == want for k, want in labels.items()):
                return v
    return None


def test_metrics_need_the_scope(hub):
    assert requests.get(f"{hub.url}/hub/metrics", timeout=30).status_code == 403
    alice = hub.user_token("alice")  # a user's token has no read:metrics
    r = requests.get(f"{hub.url}/hub/metrics", headers={"Authorization": f"token {alice}"}, timeout=30)
    assert r.status_code == 403


def test_spawn_phases_sessions_and_scheduler_queries_are_exported(hub):
    families = scrape(hub)
    for phase in ("submit", "queue", "start"):
        count = value(families, "ink_spawn_phase_seconds_count", backend="local", app="jupyter", phase=phase)
        total = value(families, "ink_spawn_phase_seconds_sum", backend="local", app="jupyter", phase=phase)
        assert count is not None and count >= 1, phase
        assert total > 0, phase
    # the whole spawn of a local JupyterLab takes seconds: the phases must add up to that scale
    start = value(families, "ink_spawn_phase_seconds_sum", backend="local", app="jupyter", phase="start")
    assert 0.2 < start < 300
    assert value(families, "ink_queue_wait_seconds_count", backend="local") >= 1
    assert value(families, "ink_sessions", backend="local", app="jupyter", experiment="default") == 1
    assert value(families, "ink_sessions", app="second") is None  # nothing invented
    assert value(families, "ink_scheduler_query_seconds_count", backend="local", kind="status") >= 1
    assert value(families, "ink_scheduler_query_seconds_sum", backend="local", kind="status") > 0
    assert "ink_scheduler_query_errors" in families
    assert value(families, "ink_kerberos_renewals_total", result="ok") == 0  # no Kerberos here
    assert value(families, "ink_kerberos_renewals_total", result="failed") == 0


def test_sessions_gauge_follows_start_and_stop(hub):
    hub.start_and_wait("bob", "second", {"experiment": "default"})
    assert value(scrape(hub), "ink_sessions", backend="local", app="second") == 1
    hub.stop_server("bob", "second")
    assert value(scrape(hub), "ink_sessions", backend="local", app="second") is None
    assert value(scrape(hub), "ink_spawn_phase_seconds_count", app="second", phase="start") >= 1


def exprs_metric_names(dashboard: dict) -> set[str]:
    names = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for word in re.findall(r"\b((?:ink|jupyterhub)_[a-z_]+)\b", target["expr"]):
                names.add(re.sub(r"_(bucket|count|sum|total)$", "", word))
    return names


def test_grafana_dashboard_asks_only_for_exported_metrics(hub):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"] and all(p.get("targets") for p in dashboard["panels"])
    used = exprs_metric_names(dashboard)
    exported = set(scrape(hub))
    assert used <= exported, f"not exported by the hub: {sorted(used - exported)}"
    # every INK metric is on the dashboard
    assert {n for n in exported if n.startswith("ink_") and not n.endswith("_created")} <= used


def lens_get(hub, token, user, server):
    return requests.get(f"{hub.api_url}/ink/lens/{user}/{server}",
                        headers={"Authorization": f"token {token}"}, timeout=30)


def test_job_lens_figures_for_the_owner_and_admins_not_bob(hub):
    alice, bob, carol = (hub.user_token(u) for u in ("alice", "bob", "carol"))
    hub.api("PATCH", "/users/carol", json={"admin": True})
    r = wait_for(lambda: (lambda r: r if r.status_code == 200 and len(r.json()["samples"]) >= 3 else None)(
        lens_get(hub, alice, "alice", "jupyter")), timeout=60, message="Job Lens samples of alice's session")
    body = r.json()
    assert body["efficiency"].startswith("used ") and body["summary"]["samples"] >= 3
    assert lens_get(hub, bob, "alice", "jupyter").status_code == 403
    assert lens_get(hub, carol, "alice", "jupyter").status_code == 200
    assert lens_get(hub, alice, "alice", "second").status_code == 404


def test_job_lens_file_of_another_owner_is_not_read(hub, tmp_path):
    """A session's file replaced by a symlink to someone else's file yields nothing."""
    import pwd

    from ink_hub.lens import _read_owned

    alice = pwd.getpwnam("alice")
    target = Path(alice.pw_dir) / ".ink" / "lens" / "session-jupyter.jsonl"
    assert _read_owned(str(target), alice.pw_uid)  # the real one is read
    assert _read_owned(str(target), alice.pw_uid + 1) is None  # owned by someone else: refused
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert _read_owned(str(link), alice.pw_uid) is None  # a symlink is never followed


@pytest.mark.browser
def test_admin_stats_page_and_panel_lens(browser, hub, tmp_path):
    hub.api("PATCH", "/users/carol", json={"admin": True})
    # alice's panel: her running session with its CPU sparkline and efficiency line
    alice = login(browser, hub, "alice")
    row = alice.locator("#ink-sessions tbody tr[data-name=jupyter]")
    row.locator("svg.ink-cpu-spark polyline").wait_for()
    alice.wait_for_function(
        "() => document.querySelector('#ink-sessions tr[data-name=jupyter] .ink-efficiency').textContent.startsWith('used ')")
    shot(alice, tmp_path, "panel-joblens.png")
    # bob may not open the statistics page
    bob = login(browser, hub, "bob")
    response = bob.goto(f"{hub.url}/hub/ink/admin/stats")
    assert response.status == 403
    # carol (admin) sees sessions and waits by app and experiment, and alice's efficiency
    carol = login(browser, hub, "carol")
    carol.goto(f"{hub.url}/hub/ink/admin/stats")

    def sessions_row():
        carol.reload()
        rows = carol.locator("#ink-stats-sessions tbody tr", has_text="jupyter")
        return rows.count() and rows.first.locator(".now").inner_text() == "1"

    wait_for(sessions_row, timeout=30, interval=1, message="a session sample on the statistics page")
    waits = carol.locator("#ink-stats-waits tbody tr", has_text="jupyter").first
    assert waits.locator(".experiment").inner_text() == "default"
    assert int(waits.locator(".count").inner_text()) >= 1
    eff = carol.locator("#ink-stats-efficiency tbody tr[data-user=alice] .efficiency").first
    assert eff.inner_text().startswith("used ")
    shot(carol, tmp_path, "admin-stats.png")


@pytest.mark.slurm
def test_slurm_spawn_phases_and_queue_wait_by_partition(hub_factory, dev_slurm):
    """On the real Slurm the queue wait is labelled with the partition squeue reports."""
    import subprocess

    from .conftest import SLURM_HUB_CONFIG

    hub = hub_factory(SLURM_HUB_CONFIG + EXTRA, backend="slurm")
    hub.start_and_wait("alice", "jupyter", {"experiment": "default"}, timeout=300)
    families = scrape(hub)
    partitions = set(subprocess.run(["sinfo", "--noheader", "--format=%R"], capture_output=True,
                                    text=True, check=True).stdout.split())
    queues = {labels["queue"] for name, labels, _ in families["ink_queue_wait_seconds"]
              if name == "ink_queue_wait_seconds_count" and labels["backend"] == "slurm"}
    assert queues and queues <= partitions, (queues, partitions)
    for phase in ("submit", "queue", "start"):
        assert value(families, "ink_spawn_phase_seconds_sum", backend="slurm", app="jupyter", phase=phase) > 0
    assert value(families, "ink_scheduler_query_seconds_count", backend="slurm", kind="status") >= 1
    assert value(families, "ink_sessions", backend="slurm", app="jupyter", experiment="default") == 1
