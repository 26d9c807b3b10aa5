"""Job submission through the workflow API vs direct sbatch, on the dev Slurm, in one run.

One real hub + proxy; alice's portal server (local backend) serves ``/ink/api/v1``. A token with
``custom:ink:jobs`` submits trivial jobs (``true``) with ``POST .../jobs`` over one keep-alive
HTTP connection, through the proxy, as a workflow client would; each request is checked with
the hub without cache (revocation at once), validated against alice's profile, recorded under
``~/.ink/jobs`` and submitted with ``sbatch`` as alice. The baseline runs the same ``sbatch``
command line (same batch script, same wrapper, same resources) directly as alice (uid/gid set
at exec, no ``runuser``), sequentially. Both alternate in blocks of 20 so that a busier
scheduler later in the run weighs on both alike.

    .venv/bin/python benchmarks/jobs_api.py [--jobs 200] [--block 20] [--keep]

Last line: ``RESULT jobs_submit_200 api_s=<s> sbatch_s=<s> overhead_per_job_ms=<ms>``
(target: overhead <= 20 ms per job).
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import time

import requests

import _common as C
from _common import log

from ink_files_ext.jobs.service import JOB_WRAPPER
from ink_spawner.backends.base import minimal_env
from ink_spawner.backends.slurm import SlurmBackend
from ink_spawner.jobspec import JobSpec

USER = "alice"
CATALOGUE = """
defaults: {memory: 100M, walltime: "0:05:00"}
experiments:
  default:
    title: Everyone
    members: {everyone: true}
    apps: [portal]
"""
HUB_CONFIG = """
c.SlurmBackend.poll_interval = 2
c.SlurmBackend.spawn_poll_interval = 0.5
"""


def direct_sbatch_argv(tag: str, home: str, n: int, job_dir: str) -> tuple[list[str], dict]:
    """The command line the API builds for the same job, for a direct sbatch of it."""
    spec = JobSpec(
        user=USER, name=f"direct{tag}",
        command=("/bin/sh", "-c", JOB_WRAPPER, "ink-job", f"{job_dir}/stderr-{n}", f"{job_dir}/exit-{n}", "true"),
        env={"HOME": home, "USER": USER, "INK_JOB_ID": f"{n:012x}", "INK_EXPERIMENT": "default"},
        workdir=home, output_path=f"{job_dir}/stdout-{n}", memory_mb=100, walltime_s=300,
        tags={"ink": "bench", "run": tag},
    )
    backend = SlurmBackend(run_as_user=False)
    env = minimal_env()
    env.update(spec.env)
    return backend.sbatch_argv(spec), env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the hub's work directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark submits as the test user alice")
    if subprocess.run([C.SQUEUE, "--noheader"], capture_output=True).returncode:
        sys.exit("Slurm is not usable; run scripts/dev-slurm start first")
    C.harness.ensure_unix_users([USER])
    C.bound_runtime(1800)
    tag = C.run_tag()
    entry = pwd.getpwnam(USER)
    direct_dir = os.path.join(entry.pw_dir, ".ink", f"bench-{tag}")
    workdir = C.make_workdir("ink-jobs-bench-")
    tracker = C.JobTracker()
    hub = C.harness.Hub(workdir, HUB_CONFIG, backend="slurm", catalogue=CATALOGUE)
    api_ids: list[str] = []
    api_times: list[float] = []
    direct_times: list[float] = []
    try:
        hub.start()
        t0 = time.monotonic()
        hub.start_and_wait(USER, "portal")
        log(f"portal server of {USER} ready in {time.monotonic() - t0:.1f} s")
        r = hub.api("POST", f"/users/{USER}/tokens", json={
            "note": "jobs benchmark", "expires_in": 3600,
            "scopes": [f"access:servers!user={USER}", f"custom:ink:jobs!user={USER}"]})
        r.raise_for_status()
        session = requests.Session()
        session.headers["Authorization"] = f"token {r.json()['token']}"
        url = f"{hub.url}/user/{USER}/portal/ink/api/v1/jobs"
        body = {"command": ["true"], "name": f"bench{tag}", "memory": "100M", "walltime": "0:05:00"}
        # warm-up, untimed: connection, token check path, first sbatch
        warm = session.post(url, json=body, timeout=60)
        warm.raise_for_status()
        api_ids.append(warm.json()["id"])
        tracker.ids.add(warm.json()["backend_id"])
        os.makedirs(direct_dir, mode=0o700, exist_ok=True)
        os.chown(direct_dir, entry.pw_uid, entry.pw_gid)
        groups = os.getgrouplist(USER, entry.pw_gid)

        done = 0
        while done < args.jobs:
            n = min(args.block, args.jobs - done)
            for _ in range(n):
                start = time.perf_counter()
                r = session.post(url, json=body, timeout=60)
                api_times.append(time.perf_counter() - start)
                if r.status_code != 201:
                    raise RuntimeError(f"API submit failed: HTTP {r.status_code} {r.text}")
                api_ids.append(r.json()["id"])
                tracker.ids.add(r.json()["backend_id"])
            for i in range(n):
                argv, env = direct_sbatch_argv(tag, entry.pw_dir, done + i, direct_dir)
                start = time.perf_counter()
                p = subprocess.run(argv, env=env, cwd=entry.pw_dir, capture_output=True, text=True,
                                   user=entry.pw_uid, group=entry.pw_gid, extra_groups=groups)
                direct_times.append(time.perf_counter() - start)
                if p.returncode:
                    raise RuntimeError(f"sbatch failed: {p.stderr.strip()}")
                tracker.ids.add(p.stdout.strip().split(";")[0])
            done += n
            log(f"{done:4d}/{args.jobs}: API median {statistics.median(api_times) * 1000:.1f} ms, "
                f"sbatch median {statistics.median(direct_times) * 1000:.1f} ms")

        api_s, sbatch_s = sum(api_times), sum(direct_times)
        overhead_ms = (api_s - sbatch_s) / args.jobs * 1000
        log("")
        log(f"{'':28}{'API':>10}{'sbatch':>10}")
        for label, f in (("total (s)", sum), ("median per job (ms)", statistics.median),
                         ("p90 per job (ms)", lambda xs: sorted(xs)[int(len(xs) * 0.9)]),
                         ("max per job (ms)", max)):
            scale = 1 if label.startswith("total") else 1000
            log(f"{label:28}{f(api_times) * scale:10.3f}{f(direct_times) * scale:10.3f}")
        log(f"overhead per job: {overhead_ms:.1f} ms (target <= 20 ms)")
        C.cancel_runtime_bound()
        # every API job ran and ended: the benchmark did submit real work
        tracker.wait_gone(120)
        log(f"RESULT jobs_submit_{args.jobs} api_s={api_s:.3f} sbatch_s={sbatch_s:.3f} "
            f"overhead_per_job_ms={overhead_ms:.1f}")
        return 0
    finally:
        C.protect_cleanup()
        left = tracker.cancel_leftovers()
        if left:
            log(f"cleanup: still listed: {' '.join(r['id'] for r in left)}")
        try:
            for name in list(hub.user_model(USER).get("servers", {})):
                hub.api("DELETE", f"/users/{USER}/servers/{name}")
            time.sleep(1)
        except Exception:  # noqa: BLE001  (hub already gone)
            pass
        C.stop_hub(hub)
        jobs_root = os.path.join(entry.pw_dir, ".ink", "jobs")
        for job_id in api_ids:
            shutil.rmtree(os.path.join(jobs_root, job_id), ignore_errors=True)
        shutil.rmtree(direct_dir, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
