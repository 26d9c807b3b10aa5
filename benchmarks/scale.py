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
- the storm: 30 users (created as ``inkst01``..``inkst30``) press Start within one second,
  against the same hub restarted with a site's limits (JupyterHub's ``concurrent_spawn_limit``,
  20 by default here; ``active_server_limit`` with ``--storm-active-limit``). Every press is
  followed to its end and counted as exactly one of: ready; refused with a message naming the
  reason (HTTP 4xx/5xx at the press: spawn limit, active-server cap, session cap, ...); failed
  after it was accepted (its progress stream's failure message); refused without a reason or
  never resolved (both bugs). Then every session is stopped and the jobs left are counted
  (``orphans``). The tally is the ``STORM`` line, printed before the ``RESULT`` line;
  ``--check`` makes the script exit 1 when a press ended as a bug or a job was left.

    .venv/bin/python benchmarks/scale.py [--sessions 100] [--interval 5] [--intervals 3]
        [--storm-users 30] [--storm-spawn-limit 20] [--storm-active-limit 0] [--check]

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


def catalogue(apps: list[str], cap: int) -> str:
    entries = "\n".join(f"  {a}: {{title: Bench {a}, default_url: /api/status, form: false}}" for a in apps)
    return f"""
site: {{max_sessions_per_user: {cap}}}
defaults: {{cpus: 1, memory: 600M, walltime: "1:00:00"}}
limits: {{cpus: 1, memory: 600M, walltime: "1:00:00"}}
dask: {{max_workers: 0, worker: {{cpus: 1, memory: 600M, walltime: "1:00:00"}}}}  # within the limits
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


#: JupyterHub's own refusals (jupyterhub/handlers/base.py) and INK's, as named reasons
REASONS = (
    ("Too many users trying to log in", "concurrent_spawn_limit"),
    ("Active user limit exceeded", "active_server_limit"),
    ("sessions running (limit", "session cap"),
    ("not reachable", "scheduler unreachable"),
    ("did not answer", "scheduler hangs"),
)


def reason_of(message: str) -> str:
    """The reason a refusal names, or "" when its message names none."""
    for text, reason in REASONS:
        if text in message:
            return reason
    return f"other: {message[:80]}" if message.strip() else ""


def storm(hub, hub_id: str, app: str, users) -> dict:
    """Every user presses Start at once; follow each press to ready, refused or failed."""
    keys = [(u, app) for u in users]
    hub.api("POST", "/users", json={"usernames": list(users)})
    barrier = threading.Barrier(len(keys))
    outcome: dict = {}
    pressed: dict = {}

    def press(key):
        user, name = key
        barrier.wait()
        pressed[key] = time.monotonic()
        with new_session(hub) as s:
            r = s.post(f"{hub.api_url}/users/{user}/servers/{name}", json={}, timeout=600)
        if r.status_code == 201:
            outcome[key] = ("ready", "")
            return
        if r.status_code != 202:
            try:
                message = r.json().get("message", "")
            except ValueError:
                message = r.text[:200]
            reason = reason_of(message)
            outcome[key] = ("refused", f"{r.status_code} {reason}") if reason else \
                ("refused_without_reason", f"{r.status_code} {message[:80]!r}")
            return
        try:  # accepted: its progress stream ends with ready or with the failure's message
            events = hub.progress(user, name, timeout=900)
        except requests.RequestException as e:
            events = [{"message": f"progress stream broke: {e}"}]
        last = events[-1] if events else {}
        if last.get("ready"):
            outcome[key] = ("ready", "")
        elif last.get("failed"):
            outcome[key] = ("failed", last.get("message", "")[:120])
        else:
            model = server_models_of(hub, [user]).get(key) or {}
            outcome[key] = ("ready", "") if model.get("ready") else ("unresolved", repr(last)[:120])

    threads = [threading.Thread(target=press, args=(k,)) for k in keys]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    counts = {kind: sum(1 for v in outcome.values() if v[0] == kind)
              for kind in ("ready", "refused", "failed", "refused_without_reason", "unresolved")}
    counts["unresolved"] += len(keys) - len(outcome)  # a press whose thread died
    for kind in ("refused", "failed", "refused_without_reason", "unresolved"):
        details = sorted({v[1] for v in outcome.values() if v[0] == kind})
        if details:
            log(f"storm {kind}: " + "; ".join(f"{d} (x{sum(1 for v in outcome.values() if v == (kind, d))})"
                                           for d in details))
    stop_all(hub, keys, timeout=600)
    counts["orphans"] = wait_no_jobs(hub_id)
    counts["seconds"] = elapsed
    counts["spread"] = max(pressed.values()) - min(pressed.values()) if pressed else 0.0
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--interval", type=float, default=5)
    parser.add_argument("--intervals", type=int, default=3)
    parser.add_argument("--storm-users", type=int, default=30, help="users pressing Start at once")
    parser.add_argument("--storm-spawn-limit", type=int, default=20,
                        help="JupyterHub.concurrent_spawn_limit during the storm (0: none)")
    parser.add_argument("--storm-active-limit", type=int, default=0,
                        help="JupyterHub.active_server_limit during the storm (0: none)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a storm press was not ready/refused-with-a-reason/failed, or a job was left")
    args = parser.parse_args()
    C.check_slurm()
    C.harness.ensure_unix_users()
    storm_users = tuple(f"inkst{i:02d}" for i in range(1, args.storm_users + 1))
    C.harness.ensure_unix_users(storm_users)
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

        # the storm: the users press Start within one second, against the site's limits
        C.stop_hub(hub)
        hub.extra_config += (f"\nc.JupyterHub.concurrent_spawn_limit = {args.storm_spawn_limit}\n"
                             f"c.JupyterHub.active_server_limit = {args.storm_active_limit}\n")
        hub.start(timeout=300)
        tally = storm(hub, hub_id, apps[0], storm_users)
        print(f"STORM users={len(storm_users)} pressed_within_s={tally['spread']:.2f} "
              f"all_resolved_s={tally['seconds']:.1f} ready={tally['ready']} "
              f"refused_with_reason={tally['refused']} failed={tally['failed']} "
              f"refused_without_reason={tally['refused_without_reason']} unresolved={tally['unresolved']} "
              f"orphans={tally['orphans']} spawn_limit={args.storm_spawn_limit} "
              f"active_limit={args.storm_active_limit}", flush=True)
        ratio = cpu_n / cpu_10 if cpu_10 else float("inf")
        print(f"RESULT scale sessions={len(keys)} all_ready_s={all_ready:.1f} hub_cpu_per_poll_10={cpu_10:.3f} "
              f"hub_cpu_per_poll_{len(keys)}={cpu_n:.3f} cpu_ratio={ratio:.2f} hub_rss_mb={rss:.0f} "
              f"proxy_p95_ms_10={p95_10:.1f} proxy_p95_ms_{len(keys)}={p95_n:.1f} orphans={orphans}", flush=True)
        bugs = tally["refused_without_reason"] + tally["unresolved"] + tally["orphans"] + orphans
    finally:
        for job in jobs_of(hub_id):
            subprocess.run(["scancel", job])
        C.stop_hub(hub)
    if args.check and bugs:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
