"""Scheduler load of many live sessions: squeue calls per poll interval, InkSpawner vs batchspawner.

For each spawner in turn, one hub starts ``--sessions`` (default 50) sessions on the dev Slurm,
spread over the five test users with ten named servers each (s01..s10). A session's job runs
``benchmarks/minimal_server.py`` (a stdlib HTTP server that answers every GET with 200) instead
of jupyter-server, so that 50 sessions fit on a small machine. Every scheduler command goes
through a counting wrapper (a shell script that appends one line to a log, then execs the real
squeue/sbatch/scancel). Both hubs poll every ``--interval`` seconds (``c.Spawner.poll_interval``;
for InkSpawner also ``c.SlurmBackend.poll_interval``). Once all sessions are ready and one
interval has passed, the squeue calls over ``--intervals`` intervals are counted (the window
starts half an interval after a squeue call; see run_phase).

    .venv/bin/python benchmarks/poll_load.py [--sessions 50] [--interval 5] [--intervals 3]

Last line: ``RESULT scheduler_queries_per_poll sessions=50 ink=<n> batchspawner=<n>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import requests

import _common as C
from _common import log

SPAWNERS = ("ink", "batchspawner")
USERS = C.harness.TEST_USERS
COMMANDS = {"squeue": C.SQUEUE, "sbatch": C.SBATCH, "scancel": C.SCANCEL}

WRAPPER = """#!/bin/sh
# counting wrapper written by benchmarks/poll_load.py
printf '%s {name} %s %s\\n' "$(date +%s.%N)" "$(id -un)" "$*" >> {log}
exec {real} "$@"
"""


def make_wrappers(directory: Path) -> Path:
    """squeue/sbatch/scancel wrappers in ``directory``; returns the shared count log.

    sbatch and scancel run as the session's user (runuser), so the directory is world-readable
    and the log world-appendable.
    """
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    count_log = directory / "commands.log"
    count_log.touch()
    count_log.chmod(0o666)
    for name, real in COMMANDS.items():
        path = directory / name
        path.write_text(WRAPPER.format(name=name, log=count_log, real=real))
        path.chmod(0o755)
    return count_log


def read_counts(count_log: Path, since: float = 0.0, until: float = float("inf")) -> dict[str, int]:
    counts = dict.fromkeys(COMMANDS, 0)
    for line in count_log.read_text(errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) < 2:
            continue
        try:
            ts = float(parts[0])
        except ValueError:
            continue
        if since <= ts <= until and parts[1] in counts:
            counts[parts[1]] += 1
    return counts


def wait_for_next_call(count_log: Path, name: str, timeout: float) -> float | None:
    """Time of the next ``name`` call logged from now on (None on timeout)."""
    start = time.time()
    while time.time() - start < timeout:
        times = []
        for line in count_log.read_text(errors="replace").splitlines():
            parts = line.split(" ", 2)
            try:
                ts = float(parts[0])
            except (ValueError, IndexError):
                continue
            if ts >= start and parts[1:2] == [name]:
                times.append(ts)
        if times:
            return min(times)
        time.sleep(0.05)
    return None


def sessions(n: int) -> list[tuple[str, str]]:
    names = [f"s{i:02d}" for i in range(1, (n + len(USERS) - 1) // len(USERS) + 1)]
    return [(u, s) for s in names for u in USERS][:n]


# ---- hub configs --------------------------------------------------------------------------------

def common_config(interval: float) -> str:
    return f"""
c.Spawner.poll_interval = {interval!r}
c.JupyterHub.log_level = "INFO"  # the harness default DEBUG is heavy with 50 sessions
"""


def ink_extra_config(hub_id: str, log_dir: str, wrappers: Path, server: Path,
                     interval: float, names) -> str:
    apps = {name: {"title": f"bench {name}", "default_url": "/"} for name in sorted(set(names))}
    return common_config(interval) + f"""
# every server name of this benchmark (s01, s02, ...) is an app of its own
c.InkSpawner.apps = {apps!r}

async def _bench_resolver(spawner, user_options):
    return await spawner.make_jobspec(
        app=spawner.app_info(), cpus=1, gpus=0, memory_mb=100, walltime_s=3600,
        partition=None, account=None, qos=None)

c.InkSpawner.resolver = _bench_resolver
c.InkSpawner.cmd = [{sys.executable!r}, {str(server)!r}]
c.InkSpawner.hub_id = {hub_id!r}
c.InkSpawner.log_dir = {log_dir!r}
c.SlurmBackend.poll_interval = {interval!r}
c.SlurmBackend.squeue = {str(wrappers / 'squeue')!r}
c.SlurmBackend.sbatch = {str(wrappers / 'sbatch')!r}
c.SlurmBackend.scancel = {str(wrappers / 'scancel')!r}
"""


def batchspawner_extra_config(job_name: str, out_base: str, wrappers: Path, server: Path,
                              interval: float) -> str:
    venv = str(C.VENV_BIN)
    job_path = ":".join([venv, "/usr/local/bin", "/usr/bin", "/bin"])
    script = C.batchspawner_script(job_name, out_base)
    # batchspawner's default command templates, with the counting wrappers in front
    submit = f"{wrappers / 'sbatch'} --parsable"
    query = f"{wrappers / 'squeue'} -h -j {{job_id}} -o '%T %B'"
    cancel = f"{wrappers / 'scancel'} {{job_id}}"
    return common_config(interval) + f"""
import batchspawner  # noqa: F401  (registers batchspawner's /hub/api/batchspawner handler)
c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
c.BatchSpawnerBase.exec_prefix = "/usr/sbin/runuser -u {{username}} --"
c.SlurmSpawner.req_srun = ""
c.SlurmSpawner.batchspawner_singleuser_cmd = {venv + '/batchspawner-singleuser'!r}
c.SlurmSpawner.cmd = [{str(server)!r}]
c.SlurmSpawner.environment = {{"PATH": {job_path!r}, "LANG": "C.UTF-8"}}
c.SlurmSpawner.req_nprocs = "1"
c.SlurmSpawner.req_memory = "100M"
c.SlurmSpawner.req_runtime = "01:00:00"
c.SlurmSpawner.batch_script = {script!r}
c.SlurmSpawner.batch_submit_cmd = {submit!r}
c.SlurmSpawner.batch_query_cmd = {query!r}
c.SlurmSpawner.batch_cancel_cmd = {cancel!r}
"""


# ---- driving a hub ------------------------------------------------------------------------------

def new_session(hub) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"token {hub.token}"
    return s


def server_models(hub) -> dict[tuple[str, str], dict]:
    out = {}
    with new_session(hub) as s:
        for user in USERS:
            r = s.get(f"{hub.api_url}/users/{user}", timeout=30)
            if r.status_code == 404:
                continue
            r.raise_for_status()
            for name, model in (r.json().get("servers") or {}).items():
                out[(user, name)] = model
    return out


def hub_cpu_seconds(hub) -> float:
    """CPU time of the hub process and its reaped children (scheduler commands included)."""
    try:
        fields = Path(f"/proc/{hub.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, AttributeError):
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def start_batch(hub, batch, timeout: float) -> float:
    """POST a batch of spawns at once and wait until all are ready; returns the seconds taken."""
    results: dict = {}

    def post(key):
        user, name = key
        try:
            with new_session(hub) as s:
                r = s.post(f"{hub.api_url}/users/{user}/servers/{name}", json={}, timeout=timeout)
                results[key] = (r.status_code, r.text[:300])
        except Exception as e:  # noqa: BLE001
            results[key] = (None, repr(e))

    t0 = time.monotonic()
    threads = [threading.Thread(target=post, args=(k,), daemon=True) for k in batch]
    for t in threads:
        t.start()
    deadline = t0 + timeout
    while True:
        done_posts = {k for k, t in zip(batch, threads) if not t.is_alive()}
        models = server_models(hub)
        waiting = [k for k in batch if not (models.get(k) or {}).get("ready")]
        if not waiting:
            break
        for k in waiting:
            if k in done_posts:
                status, text = results.get(k, (None, "?"))
                model = models.get(k)
                if status not in (201, 202) or model is None or not model.get("pending"):
                    raise RuntimeError(f"spawn {k[0]}/{k[1]} failed: HTTP {status} {text} "
                                       f"model={model}\n{hub.log_tail(30)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} sessions not ready after {timeout} s: "
                               f"{waiting[:5]}\n{hub.log_tail(30)}")
        time.sleep(0.5)
    for t in threads:
        t.join(5)
    return time.monotonic() - t0


def stop_all(hub, keys, timeout: float = 180) -> float:
    """DELETE every server (concurrently) and wait until none is listed."""
    t0 = time.monotonic()

    def delete(key):
        user, name = key
        try:
            with new_session(hub) as s:
                s.delete(f"{hub.api_url}/users/{user}/servers/{name}", timeout=timeout)
        except Exception as e:  # noqa: BLE001
            log(f"  stop {user}/{name}: {e}")

    threads = [threading.Thread(target=delete, args=(k,), daemon=True) for k in keys]
    for t in threads:
        t.start()
    deadline = t0 + timeout
    while True:
        listed = [k for k in server_models(hub) if k in set(keys)]
        if not listed or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for t in threads:
        t.join(5)
    if listed:
        log(f"  {len(listed)} servers still listed {timeout} s after DELETE")
    return time.monotonic() - t0


def run_phase(kind: str, args, workdir: Path, tag: str, tracker: C.JobTracker,
              server: Path, log_dir: str, hubs: dict) -> dict:
    wrappers = workdir / f"wrap-{kind}"
    count_log = make_wrappers(wrappers)
    if kind == "ink":
        extra = ink_extra_config(tracker.ink_hub_id, log_dir, wrappers, server, args.interval,
                                 [name for _user, name in sessions(args.sessions)])
    else:
        extra = batchspawner_extra_config(tracker.bs_job_name, str(workdir / "joblogs"),
                                          wrappers, server, args.interval)
    hub = C.harness.Hub(workdir / f"hub-{kind}", backend="slurm", extra_config=extra)
    hubs[kind] = hub
    hub.start()
    for user in USERS:
        hub.api("POST", f"/users/{user}")
    keys = sessions(args.sessions)
    log(f"[{kind}] hub up at {hub.url}; starting {len(keys)} sessions in batches of {args.batch}")
    t_start = time.monotonic()
    for i in range(0, len(keys), args.batch):
        batch = keys[i:i + args.batch]
        took = start_batch(hub, batch, args.start_timeout)
        log(f"[{kind}]   sessions {i + 1}-{i + len(batch)} ready in {took:.1f} s")
    startup_s = time.monotonic() - t_start
    startup_counts = read_counts(count_log)
    log(f"[{kind}] all {len(keys)} ready after {startup_s:.1f} s; scheduler commands so far: "
        + ", ".join(f"{k} {v}" for k, v in startup_counts.items()))

    time.sleep(args.interval * 1.2)  # let start-up polling settle into the steady interval
    window = args.interval * args.intervals
    # "reset the counter": count from t0 on. t0 is half an interval after a squeue call, so a
    # single periodic poller is counted exactly once per interval despite its +-10% jitter
    # (a window that starts at a random phase would count it 2, 3 or 4 times in 3 intervals);
    # for many independent pollers the phase makes no difference.
    t_call = wait_for_next_call(count_log, "squeue", timeout=3 * args.interval)
    t0 = (t_call or time.time()) + args.interval / 2
    time.sleep(max(0.0, t0 - time.time()))
    cpu0 = hub_cpu_seconds(hub)
    time.sleep(max(0.0, t0 + window - time.time()))
    t1, cpu1 = t0 + window, hub_cpu_seconds(hub)
    counts = read_counts(count_log, t0, t1)
    models = server_models(hub)
    alive = sum(1 for k in keys if (models.get(k) or {}).get("ready"))
    per_interval = counts["squeue"] / args.intervals
    log(f"[{kind}] over {args.intervals} intervals of {args.interval:g} s ({t1 - t0:.1f} s): "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f"; squeue per interval {per_interval:.1f}; hub CPU {cpu1 - cpu0:.2f} s "
        f"({(cpu1 - cpu0) / args.intervals:.2f} s per interval); sessions still ready {alive}")
    if alive != len(keys):
        raise RuntimeError(f"{kind}: only {alive} of {len(keys)} sessions still ready")

    stop_s = stop_all(hub, keys)
    left = tracker.wait_gone(120)
    total = read_counts(count_log)
    log(f"[{kind}] stopped all in {stop_s:.1f} s (jobs left in squeue: {len(left)}); "
        "commands in the whole phase: " + ", ".join(f"{k} {v}" for k, v in total.items()))
    C.stop_hub(hub)
    return {"per_interval": per_interval, "counts": counts, "startup_s": startup_s,
            "cpu_per_interval": (cpu1 - cpu0) / args.intervals}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--interval", type=float, default=5.0, help="poll interval of both hubs (s)")
    parser.add_argument("--intervals", type=int, default=3, help="poll intervals counted")
    parser.add_argument("--batch", type=int, default=10, help="sessions started at once")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="per batch (s)")
    parser.add_argument("--max-runtime", type=int, default=1800)
    parser.add_argument("--only", choices=SPAWNERS, help="run one spawner only (debugging)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (hub logs)")
    args = parser.parse_args()
    if args.sessions < 1 or args.intervals < 1 or args.batch < 1 or args.interval <= 0:
        parser.error("--sessions, --intervals, --batch and --interval must be positive")

    C.check_slurm()
    C.harness.ensure_unix_users()
    C.bound_runtime(args.max_runtime)
    tag = C.run_tag()
    workdir = C.make_workdir(f"ink-bench-poll-{tag}-")
    tracker = C.JobTracker(ink_hub_id=f"bench-{tag}", bs_job_name=f"inkbench-{tag}")
    server = C.install_minimal_server(workdir)
    log_dir = C.make_user_log_dirs(workdir / "joblogs", USERS)
    hubs: dict = {}
    results: dict = {}
    ok = False
    try:
        import batchspawner
        import jupyterhub

        foreign = [r for r in C.squeue_rows() if not tracker.ours(r)]
        log(f"poll_load: {args.sessions} sessions per spawner over users {', '.join(USERS)}; "
            f"poll interval {args.interval:g} s, counted over {args.intervals} intervals; "
            f"JupyterHub {jupyterhub.__version__}, batchspawner {batchspawner.__version__}; "
            f"run tag {tag}; other jobs in squeue now: {len(foreign)}")
        for kind in SPAWNERS:
            if args.only and kind != args.only:
                continue
            results[kind] = run_phase(kind, args, workdir, tag, tracker, server, log_dir, hubs)
        log("")
        log(f"Summary ({args.sessions} live sessions, poll interval {args.interval:g} s):")
        for kind, r in results.items():
            log(f"  {kind:<13} squeue per interval {r['per_interval']:5.1f}   hub CPU per interval "
                f"{r['cpu_per_interval']:.2f} s   start-up of all sessions {r['startup_s']:.1f} s")
        ok = True
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        log(f"poll_load: FAILED: {type(e).__name__}: {e}")
    finally:
        C.protect_cleanup()
        for kind, hub in hubs.items():
            if hub.proc is not None:
                try:
                    keys = list(server_models(hub))
                    if keys:
                        log(f"cleanup: stopping {len(keys)} {kind} servers")
                        stop_all(hub, keys, timeout=120)
                except Exception as e:  # noqa: BLE001
                    log(f"cleanup: stopping {kind} servers: {e}")
            C.stop_hub(hub)
        left = tracker.cancel_leftovers()
        left = left or tracker.active()
        log(f"cleanup: hubs stopped; jobs of this run left in squeue: {len(left)}"
            + (f" {left}" if left else ""))
        if not ok:
            log(f"cleanup: logs kept in {workdir}")
        elif not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        if left:
            ok = False

    def fmt(kind):
        return f"{results[kind]['per_interval']:.1f}" if kind in results else "nan"

    log(f"RESULT scheduler_queries_per_poll sessions={args.sessions} ink={fmt('ink')} "
        f"batchspawner={fmt('batchspawner')}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
