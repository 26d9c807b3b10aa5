"""Scale: N real sessions (default 100) on the dev Slurm through a real hub + CHP, and a storm.

Sessions are the smallest real single-user server the catalogue allows: JupyterHub's own
``jupyterhub-singleuser`` (INK's ``ink-singleuser``) with 1 core and 600M, spread over the five
test users with N/5 apps each (the catalogue's ``max_sessions_per_user`` raised to fit), going
through the catalogue resolver and the one validator like every spawn. The benchmark measures:

- ``all_ready_s``: all N spawn requests posted at once (20 in flight) until every one is ready;
- ``hub_cpu_per_poll_10`` / ``_100``: the hub's CPU seconds (itself and its scheduler commands)
  per poll interval with 10 and with N sessions running, over ``--intervals`` intervals; and
  ``cpu_ratio`` between them (target <= 2: one scheduler query per interval for all sessions);
- ``hub_rss_mb`` with N sessions;
- ``proxy_p95_ms_10`` / ``_100``: p95 of 200 GETs through CHP to one session (target: at N no
  worse than 2x at 10);
- ``orphans``: jobs of this hub left in squeue 60 s after stopping them all (target 0);
- the storm: 30 users (created as ``inkst01``..``inkst30``) press Start within one second;
  each is ready or refused with a message; ``storm_ready`` / ``storm_refused`` and the jobs
  left after stopping them all.

    .venv/bin/python benchmarks/scale.py [--sessions 100] [--interval 5] [--intervals 3]

LAST line: ``RESULT scale sessions=100 all_ready_s=<s> hub_cpu_per_poll_10=<s> hub_cpu_per_poll_100=<s> cpu_ratio=<r> hub_rss_mb=<MB> proxy_p95_ms_10=<ms> proxy_p95_ms_100=<ms> orphans=<n>``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

import _common as C
from _common import log
from poll_load import hub_cpu_seconds, new_session, server_models, stop_all

USERS = C.harness.TEST_USERS
STORM_USERS = tuple(f"inkst{i:02d}" for i in range(1, 31))


def catalogue(apps: list[str], cap: int) -> str:
    entries = "\n".join(f"  {a}: {{title: Bench {a}, default_url: /api/status, form: false}}" for a in apps)
    return f"""
site: {{max_sessions_per_user: {cap}}}
defaults: {{cpus: 1, memory: 600M, walltime: "1:00:00"}}
limits: {{cpus: 1, memory: 600M, walltime: "1:00:00"}}
apps:
{entries}
experiments:
  bench: {{title: Bench, members: {{everyone: true}}, apps: [{", ".join(apps)}]}}
"""


CONFIG = """
c.SlurmBackend.poll_interval = {interval}
c.SlurmBackend.spawn_poll_interval = 1
c.InkSpawner.poll_interval = {interval}
c.JupyterHub.log_level = "INFO"
c.InkSpawner.hub_id = "{hub_id}"
c.InkSpawner.start_timeout = 900
c.InkSpawner.http_timeout = 300
c.JupyterHub.concurrent_spawn_limit = 0
"""


def spawn_all(hub, keys, parallel: int = 20, timeout: float = 1200) -> tuple[float, dict]:
    """Post every spawn (``parallel`` at a time) and wait until each is ready or refused."""
    answers: dict = {}

    def post(key):
        user, name = key
        with new_session(hub) as s:
            r = s.post(f"{hub.api_url}/users/{user}/servers/{name}", json={}, timeout=timeout)
        answers[key] = (r.status_code, r.text[:300])

    t0 = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(post, keys))
    while True:
        models = server_models_of(hub, {u for u, _ in keys})
        waiting = [k for k in keys if answers[k][0] in (201, 202) and not (models.get(k) or {}).get("ready")]
        gone = [k for k in waiting if k not in models]  # the spawn failed after it was accepted
        for k in gone:
            answers[k] = (500, "failed after it was accepted")
            waiting.remove(k)
        if not waiting:
            break
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{len(waiting)} sessions not ready after {timeout} s\n{hub.log_tail(30)}")
        time.sleep(1)
    return time.monotonic() - t0, answers


def server_models_of(hub, users) -> dict:
    out = {}
    with new_session(hub) as s:
        for user in users:
            r = s.get(f"{hub.api_url}/users/{user}", timeout=60)
            if r.ok:
                out.update({(user, n): m for n, m in (r.json().get("servers") or {}).items()})
    return out


def cpu_per_interval(hub, interval: float, intervals: int) -> float:
    time.sleep(interval)  # settle after the spawns
    before = hub_cpu_seconds(hub)
    time.sleep(interval * intervals)
    return (hub_cpu_seconds(hub) - before) / intervals


def proxy_p95_ms(hub, user: str, app: str, n: int = 200) -> float:
    token = hub.user_token(user)
    url = f"{hub.url}/user/{user}/{app}/api/status"
    times = []
    with requests.Session() as s:
        s.headers["Authorization"] = f"token {token}"
        s.get(url, timeout=60).raise_for_status()
        for _ in range(n):
            t = time.perf_counter()
            s.get(url, timeout=60).raise_for_status()
            times.append((time.perf_counter() - t) * 1000)
    return statistics.quantiles(times, n=20)[18]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def jobs_of(hub_id: str) -> list[str]:
    out = subprocess.run(["squeue", "--noheader", "--format=%i|%k"], capture_output=True, text=True).stdout
    return [line.split("|")[0] for line in out.splitlines() if f"hub={hub_id}" in line]


def wait_no_jobs(hub_id: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while jobs_of(hub_id) and time.monotonic() < deadline:
        time.sleep(1)
    return len(jobs_of(hub_id))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--interval", type=float, default=5)
    parser.add_argument("--intervals", type=int, default=3)
    args = parser.parse_args()
    C.check_slurm()
    C.harness.ensure_unix_users()
    C.harness.ensure_unix_users(STORM_USERS)
    per_user = -(-args.sessions // len(USERS))
    apps = [f"b{i:02d}" for i in range(1, per_user + 1)]
    keys = [(u, a) for a in apps for u in USERS][: args.sessions]
    hub_id = f"scale{C.run_tag()}"
    workdir = C.make_workdir("ink-scale-")
    hub = C.harness.Hub(workdir / "hub", CONFIG.format(interval=args.interval, hub_id=hub_id),
                        backend="slurm", catalogue=catalogue(apps, max(per_user, 4)))
    hub.start(timeout=300)
    try:
        first, rest = keys[:10], keys[10:]
        t0 = time.monotonic()
        _, answers = spawn_all(hub, first)
        cpu_10 = cpu_per_interval(hub, args.interval, args.intervals)
        p95_10 = proxy_p95_ms(hub, *first[0])
        log(f"10 sessions: hub CPU {cpu_10:.3f} s per {args.interval:g} s interval, proxy p95 {p95_10:.1f} ms")
        _, more = spawn_all(hub, rest)
        all_ready = time.monotonic() - t0
        answers.update(more)
        refused = {k: v for k, v in answers.items() if v[0] not in (201, 202)}
        ready = len(keys) - len(refused)
        log(f"{ready} of {len(keys)} ready after {all_ready:.1f} s; refused: {list(refused.items())[:3]}")
        cpu_n = cpu_per_interval(hub, args.interval, args.intervals)
        p95_n = proxy_p95_ms(hub, *first[0])
        rss = rss_mb(hub.proc.pid)
        log(f"{len(keys)} sessions: hub CPU {cpu_n:.3f} s per interval, proxy p95 {p95_n:.1f} ms, hub RSS {rss:.0f} MB")
        stop_all(hub, keys, timeout=600)
        orphans = wait_no_jobs(hub_id)

        # the storm: 30 users press Start within one second
        storm = [(u, apps[0]) for u in STORM_USERS]
        hub.api("POST", "/users", json={"usernames": list(STORM_USERS)})
        barrier = threading.Barrier(len(storm))
        storm_answers: dict = {}

        def press(key):
            barrier.wait()
            with new_session(hub) as s:
                r = s.post(f"{hub.api_url}/users/{key[0]}/servers/{key[1]}", json={}, timeout=600)
            storm_answers[key] = (r.status_code, r.json().get("message", "") if r.status_code >= 400 else "")

        threads = [threading.Thread(target=press, args=(k,)) for k in storm]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            models = server_models_of(hub, STORM_USERS)
            pending = [k for k, (st, _) in storm_answers.items()
                       if st in (201, 202) and k in models and not models[k].get("ready")]
            if not pending:
                break
            time.sleep(1)
        models = server_models_of(hub, STORM_USERS)
        storm_ready = sum(1 for k in storm if (models.get(k) or {}).get("ready"))
        storm_refused = {k: v for k, v in storm_answers.items() if v[0] not in (201, 202)}
        unexplained = [k for k, v in storm_refused.items() if not v[1]]
        log(f"storm: {storm_ready} ready, {len(storm_refused)} refused "
            f"({sorted({v[1][:60] for v in storm_refused.values()})}), {len(unexplained)} without a message")
        stop_all(hub, storm, timeout=600)
        storm_left = wait_no_jobs(hub_id)
        log(f"storm: {storm_left} jobs left after stopping all")
        ratio = cpu_n / cpu_10 if cpu_10 else float("inf")
        print(f"RESULT scale sessions={len(keys)} all_ready_s={all_ready:.1f} hub_cpu_per_poll_10={cpu_10:.3f} "
              f"hub_cpu_per_poll_{len(keys)}={cpu_n:.3f} cpu_ratio={ratio:.2f} hub_rss_mb={rss:.0f} "
              f"proxy_p95_ms_10={p95_10:.1f} proxy_p95_ms_{len(keys)}={p95_n:.1f} orphans={orphans}")
    finally:
        for job in jobs_of(hub_id):
            subprocess.run(["scancel", job])
        C.stop_hub(hub)


if __name__ == "__main__":
    main()
