"""Spawn latency on the dev Slurm: InkSpawner vs batchspawner 1.3.0's SlurmSpawner.

Two hubs (the same JupyterHub, configurable-http-proxy, user and jupyterhub-singleuser), one per
spawner, started once each. After one untimed warm-up spawn per spawner, spawns alternate
between the hubs: alice's server "jupyter" is requested with POST /hub/api/users/alice/servers/
jupyter and the REST model is polled every 20 ms until ``ready: true``; then the server is
stopped and the job must be gone from squeue before the next spawn. A random 0-1 s pause before
each POST decorrelates the spawns from slurmctld's once-a-second scheduling pass.

The phase breakdown comes from timestamps in the hub log (millisecond resolution) and, when
readable, slurmd's log ("Launching batch job N"). batchspawner's progress stream only says
"Pending in queue..." once a second, so the logs are the common ground for both spawners.

    .venv/bin/python benchmarks/spawn_latency.py [--rounds 5]

Last line: ``RESULT spawn_ready_median_s ink=<s> batchspawner=<s> ratio=<ink/batchspawner>``.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import requests

import _common as C
from _common import log

USER = "alice"
SERVER = "jupyter"
SPAWNERS = ("ink", "batchspawner")
POLL_S = 0.02

PHASES = (
    ("submit", "POST -> job submitted (hub: resolve, sbatch)"),
    ("queue", "submitted -> slurmd launches the job"),
    ("job", "job launched -> port reported to hub"),
    ("notice", "port reported -> spawner start() returns"),
    ("http", "start() returned -> hub saw HTTP, proxy route"),
    ("rest", "hub ready -> REST shows ready:true"),
)

# hub-log markers per spawner (messages, after the "[I date time JupyterHub module:line] " prefix)
MARKERS = {
    "ink": {
        "submitted": re.compile(rf"^{USER}:{SERVER}: Submitted \S+ job (\d+)"),
        "port": re.compile(rf"^Session {USER}:{SERVER} reported port \d+"),
        "started": re.compile(rf"^{USER}:{SERVER}: .* is up on \S+"),
    },
    "batchspawner": {
        "submitted": re.compile(r"^Job submitted\. output: (\d+)"),
        "port": re.compile(r"^20\d POST /hub/api/batchspawner "),
        "started": re.compile(r"^Notebook server job \d+ started at \S+"),
    },
}
HUB_READY = re.compile(rf"^User {USER}:{SERVER} took ([\d.]+) seconds to start")


def ink_extra_config(hub_id: str, log_dir: str) -> str:
    # The harness default InkSpawner config with backend="slurm"; only the job tag (so that the
    # clean-up finds this run's jobs) and where job output goes (a temp dir removed at the end).
    return f"""
c.InkSpawner.hub_id = {hub_id!r}
c.InkSpawner.log_dir = {log_dir!r}
"""


def batchspawner_extra_config(job_name: str, out_base: str) -> str:
    venv = str(C.VENV_BIN)
    job_path = ":".join([venv, "/usr/local/bin", "/usr/bin", "/bin"])
    script = C.batchspawner_script(job_name, out_base)
    return f"""
import batchspawner  # noqa: F401  (registers batchspawner's /hub/api/batchspawner handler)
c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
c.BatchSpawnerBase.exec_prefix = "/usr/sbin/runuser -u {{username}} --"
c.SlurmSpawner.req_srun = ""
c.SlurmSpawner.batchspawner_singleuser_cmd = {venv + '/batchspawner-singleuser'!r}
c.SlurmSpawner.cmd = [{venv + '/jupyterhub-singleuser'!r}]
c.SlurmSpawner.environment = {{"PATH": {job_path!r}, "LANG": "C.UTF-8"}}
c.SlurmSpawner.req_nprocs = "1"
c.SlurmSpawner.req_memory = "1024M"
c.SlurmSpawner.req_runtime = "24:00:00"
c.SlurmSpawner.batch_script = {script!r}
"""


def new_session(hub) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"token {hub.token}"
    return s


def get_server(sess, hub) -> dict | None:
    r = sess.get(f"{hub.api_url}/users/{USER}", timeout=10)
    if r.status_code == 404:
        return None
    r.raise_for_status()
    return r.json().get("servers", {}).get(SERVER)


def spawn_once(kind: str, hub, tracker: C.JobTracker, slurmd_log: Path | None,
               timeout: float) -> dict:
    """One timed spawn and stop; returns times and the phase breakdown."""
    foreign = sum(1 for r in C.squeue_rows() if not tracker.ours(r))  # other users of the Slurm
    # slurmctld starts pending jobs in a scheduling pass about once a second; a random pause
    # keeps the alternating spawns from hitting that tick at a fixed (biased) phase
    time.sleep(random.uniform(0.0, 1.0))
    log_offset = C.file_size(hub.log_path)
    slurmd_offset = C.file_size(slurmd_log)
    post_sess, poll_sess = new_session(hub), new_session(hub)
    post_result: dict = {}

    def do_post():
        try:
            r = post_sess.post(f"{hub.api_url}/users/{USER}/servers/{SERVER}", json={},
                               timeout=timeout)
            post_result["status"] = r.status_code
            post_result["text"] = r.text[:500]
        except Exception as e:  # noqa: BLE001
            post_result["error"] = repr(e)

    t_post = time.time()
    poster = threading.Thread(target=do_post, daemon=True)
    poster.start()
    deadline = time.monotonic() + timeout
    next_poll = time.monotonic()
    while True:
        post_done = not poster.is_alive()
        server = get_server(poll_sess, hub)
        t_seen = time.time()
        if server and server.get("ready"):
            t_ready = t_seen
            break
        if post_done:
            if "error" in post_result or post_result.get("status") not in (201, 202):
                raise RuntimeError(f"{kind}: POST failed: {post_result}\n{hub.log_tail(40)}")
            if server is None or not server.get("pending"):
                raise RuntimeError(f"{kind}: spawn failed (server {server})\n{hub.log_tail(40)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{kind}: not ready after {timeout} s\n{hub.log_tail(40)}")
        next_poll += POLL_S
        time.sleep(max(0.0, next_poll - time.monotonic()))
    poster.join(timeout)

    # ---- phases from the logs -------------------------------------------------------------
    lines = C.hub_log_lines(hub.log_path, log_offset)
    marks: dict[str, float] = {}
    job_id = None
    for ts, msg in lines:
        for key, rx in MARKERS[kind].items():
            m = rx.match(msg)
            if m and key not in marks:
                marks[key] = ts
                if key == "submitted":
                    job_id = m.group(1)
        if "hub_ready" not in marks and HUB_READY.match(msg):
            marks["hub_ready"] = ts
    if job_id:
        tracker.ids.add(job_id)
    launched = C.slurmd_launch_times(slurmd_log, slurmd_offset).get(job_id) if job_id else None

    def diff(a, b):
        return b - a if a is not None and b is not None else None

    phases = {
        "submit": diff(t_post, marks.get("submitted")),
        "queue": diff(marks.get("submitted"), launched),
        "job": diff(launched, marks.get("port")),
        "notice": diff(marks.get("port"), marks.get("started")),
        "http": diff(marks.get("started"), marks.get("hub_ready")),
        "rest": diff(marks.get("hub_ready"), t_ready),
    }
    if launched is None:  # slurmd log unreadable: one phase from submit to port report
        phases["queue"] = None
        phases["job"] = diff(marks.get("submitted"), marks.get("port"))

    # ---- stop, and wait until the server and the job are gone -----------------------------
    t_stop = time.time()
    r = poll_sess.delete(f"{hub.api_url}/users/{USER}/servers/{SERVER}", timeout=120)
    if r.status_code not in (202, 204):
        raise RuntimeError(f"{kind}: stop failed: HTTP {r.status_code} {r.text}")
    stop_deadline = time.monotonic() + 120
    while get_server(poll_sess, hub) is not None:
        if time.monotonic() > stop_deadline:
            raise TimeoutError(f"{kind}: server still listed 120 s after DELETE")
        time.sleep(0.05)
    t_gone = time.time()
    if job_id:
        left = tracker.wait_gone(120, ids={job_id})
        if left:
            raise RuntimeError(f"{kind}: job {job_id} still in squeue 120 s after stop: {left}")
    t_job_gone = time.time()
    post_sess.close()
    poll_sess.close()
    return {"kind": kind, "job_id": job_id, "ready_s": t_ready - t_post, "phases": phases,
            "stop_s": t_gone - t_stop, "job_gone_s": t_job_gone - t_stop,
            "post_status": post_result.get("status"), "foreign_jobs": foreign}


def recover(kind: str, hub, tracker: C.JobTracker) -> None:
    """After a failed spawn: make sure the server and this run's jobs are gone."""
    try:
        if get_server(hub.session, hub) is not None:
            hub.api("DELETE", f"/users/{USER}/servers/{SERVER}", timeout=120)
            hub.wait_stopped(USER, SERVER, timeout=120)
    except Exception as e:  # noqa: BLE001
        log(f"  recovering {kind}: {e}")
    tracker.cancel_leftovers()


def print_report(results: dict[str, list[dict]], failures: list[str]) -> None:
    log("")
    keys = [key for key, _label in PHASES]
    log(f"Per spawn (s)    {'ready':>6}    " + "   ".join(f"{k:>6}" for k in keys)
        + "   stop->gone  stop->job gone     job")
    for kind in SPAWNERS:
        for i, r in enumerate(results[kind], 1):
            phases = "   ".join(f"{C.fmt_s(r['phases'][k]):>6}" for k in keys)
            log(f"  {kind:<13}#{i} {r['ready_s']:6.3f}    {phases}   {r['stop_s']:9.3f}"
                f"  {r['job_gone_s']:13.3f}   {r['job_id']:>5}")
    log("")
    log("Phase medians (s)                                   ink     batchspawner")
    for key, label in PHASES:
        ink = C.median(r["phases"][key] for r in results["ink"])
        bs = C.median(r["phases"][key] for r in results["batchspawner"])
        log(f"  {label:<48} {C.fmt_s(ink):>7}   {C.fmt_s(bs):>7}")
    for label, key in (("POST -> ready:true (measured)", "ready_s"),
                       ("stop: DELETE -> server gone", "stop_s"),
                       ("stop: DELETE -> job gone from squeue", "job_gone_s")):
        ink = C.median(r[key] for r in results["ink"])
        bs = C.median(r[key] for r in results["batchspawner"])
        log(f"  {label:<48} {C.fmt_s(ink):>7}   {C.fmt_s(bs):>7}")
    log("  (phases are medians of each phase separately, so they need not add up to the total;")
    log("  per spawn, ready = submit + queue + job + notice + http + rest)")
    log("  note: ink-session reports the port only once the server answers HTTP, so its")
    log("  'job launched -> port reported' includes jupyter-server start-up; batchspawner")
    log("  reports first and the hub's HTTP readiness check then waits for the server.")
    for kind in SPAWNERS:
        values = [r["ready_s"] for r in results[kind]]
        log(f"  {kind}: min {min(values):.3f}  median {C.median(values):.3f}  max {max(values):.3f}")
    foreign = max(r["foreign_jobs"] for k in SPAWNERS for r in results[k])
    log(f"  other users' jobs in squeue at spawn time: at most {foreign}"
        + ("  (the dev Slurm was shared during this run: expect noise)" if foreign else ""))
    if failures:
        log(f"  failed spawns, retried ({len(failures)}):")
        for f in failures:
            log(f"    {f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed spawns per spawner (>= 1)")
    parser.add_argument("--spawn-timeout", type=float, default=180.0)
    parser.add_argument("--max-runtime", type=int, default=0,
                        help="seconds before the run aborts and cleans up (default: from rounds)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (hub logs)")
    parser.add_argument("--max-failures", type=int, default=2,
                        help="failed spawns to report and retry before giving up (the dev Slurm "
                        "and the test users are shared with test runs)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    budget = args.max_runtime or int(180 + (args.rounds + 1) * 2 * 60)

    C.check_slurm()
    C.harness.ensure_unix_users()
    C.bound_runtime(budget)
    tag = C.run_tag()
    workdir = C.make_workdir(f"ink-bench-latency-{tag}-")
    ink_hub_id = f"bench-{tag}"
    bs_job_name = f"inkbench-{tag}"
    tracker = C.JobTracker(ink_hub_id=ink_hub_id, bs_job_name=bs_job_name)
    log_dir = C.make_user_log_dirs(workdir / "joblogs", [USER])
    slurmd_log = C.slurm_log_path("SlurmdLogFile")
    hubs: dict[str, object] = {}
    results: dict[str, list[dict]] = {k: [] for k in SPAWNERS}
    failures: list[str] = []
    ok = False

    def spawn(kind: str) -> dict:
        while True:
            try:
                return spawn_once(kind, hubs[kind], tracker, slurmd_log, args.spawn_timeout)
            except (RuntimeError, TimeoutError, requests.RequestException) as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:400]
                failures.append(f"{kind}: {first}")
                log(f"  {kind} spawn FAILED: {first}")
                if len(failures) > args.max_failures:
                    raise
                recover(kind, hubs[kind], tracker)
                log(f"  retrying ({len(failures)} of at most {args.max_failures} failures used)")

    try:
        import batchspawner
        import jupyterhub

        foreign = [r for r in C.squeue_rows() if not tracker.ours(r)]
        log(f"spawn_latency: {args.rounds} timed spawns per spawner, user {USER}, server "
            f"{SERVER!r}; JupyterHub {jupyterhub.__version__}, batchspawner "
            f"{batchspawner.__version__}; run tag {tag}; budget {budget} s")
        log(f"  slurmd log for the queue phase: {slurmd_log or 'not readable (phase merged)'}; "
            f"other jobs in squeue now: {len(foreign)}")
        hubs["ink"] = C.harness.Hub(workdir / "hub-ink", backend="slurm",
                                    extra_config=ink_extra_config(ink_hub_id, log_dir))
        hubs["batchspawner"] = C.harness.Hub(
            workdir / "hub-batchspawner", backend="slurm",
            extra_config=batchspawner_extra_config(bs_job_name, str(workdir / "joblogs")))
        for kind in SPAWNERS:
            hubs[kind].start()
            r = hubs[kind].api("POST", f"/users/{USER}")
            if r.status_code not in (201, 409):
                raise RuntimeError(f"cannot create user {USER} on the {kind} hub: {r.text}")
            log(f"  {kind} hub up at {hubs[kind].url}")
        for kind in SPAWNERS:
            w = spawn(kind)
            log(f"  warm-up {kind:<13} ready in {w['ready_s']:.3f} s (untimed)")
        for i in range(args.rounds):
            for kind in SPAWNERS:
                r = spawn(kind)
                results[kind].append(r)
                log(f"  round {i + 1} {kind:<13} ready in {r['ready_s']:.3f} s (job {r['job_id']}, "
                    f"POST {r['post_status']})")
        print_report(results, failures)
        ok = True
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        log(f"spawn_latency: FAILED: {type(e).__name__}: {e}")
    finally:
        C.protect_cleanup()
        for kind, hub in hubs.items():
            if hub.proc is not None:
                recover(kind, hub, tracker)
            C.stop_hub(hub)
        left = tracker.cancel_leftovers()
        left = left or tracker.active()
        log(f"cleanup: hubs stopped; jobs of this run left in squeue: {len(left)}"
            + (f" {left}" if left else ""))
        if args.keep or not ok:
            if not ok:
                log(f"cleanup: hub logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if left:
            ok = False

    if not ok:
        log("RESULT spawn_ready_median_s ink=nan batchspawner=nan ratio=nan")
        return 1
    ink = C.median(r["ready_s"] for r in results["ink"])
    bs = C.median(r["ready_s"] for r in results["batchspawner"])
    log(f"RESULT spawn_ready_median_s ink={ink:.3f} batchspawner={bs:.3f} ratio={ink / bs:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
