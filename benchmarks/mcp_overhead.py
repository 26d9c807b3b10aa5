"""Per-call overhead of INK's MCP server against the same REST call, on a real hub + Slurm.

One real hub + proxy with the Slurm backend; alice's portal server (local backend) serves the job
API and the MCP endpoint. One trivial job is submitted and waited for; then the same question —
"what is the state of job X" — is asked, in turn, three ways:

- REST: ``GET /user/alice/portal/ink/api/v1/jobs/X`` with a token over one keep-alive connection
  (the call every MCP tool call makes);
- MCP over stdio: ``job_status`` through the SDK's ``ClientSession`` to an ``ink mcp`` subprocess
  (JSON-RPC over pipes, argument validation, the tool's thread, the same REST call);
- MCP over streamable HTTP: ``job_status`` through the SDK's client to ``/user/alice/portal/ink/mcp``
  (the proxy, the endpoint's own token check with the hub, the SDK's stateless transport, then
  the same REST call from the portal to itself).

    .venv/bin/python benchmarks/mcp_overhead.py [--calls 600] [--block 1]

Overhead = median(MCP) - median(REST). Last line:
``RESULT mcp overhead_ms=<ms> stdio_ms=<ms> http_ms=<ms>`` where overhead_ms is the larger of the
two transports (target: <= 10 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

import _common as C
from _common import log

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
INK = str(Path(sys.prefix) / "bin" / "ink")


async def measure(hub, token: str, job_id: str, calls: int, block: int) -> dict[str, list[float]]:
    import httpx2
    from mcp import ClientSession, StdioServerParameters, stdio_client
    from mcp.client.streamable_http import streamable_http_client

    rest = requests.Session()
    rest.headers["Authorization"] = f"token {token}"
    url = f"{hub.url}/user/{USER}/portal/ink/api/v1/jobs/{job_id}"
    env = {"PATH": os.environ["PATH"], "HOME": "/tmp", "INK_HUB_URL": hub.url, "INK_TOKEN": token,
           "INK_CONFIG": "/nonexistent/ink.json"}
    params = StdioServerParameters(command=INK, args=["mcp", "--log", os.devnull], env=env)
    times: dict[str, list[float]] = {"rest": [], "stdio": [], "http": []}
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (r1, w1), ClientSession(r1, w1) as stdio, \
                httpx2.AsyncClient(headers={"Authorization": f"token {token}"}, timeout=60) as http_client, \
                streamable_http_client(f"{hub.url}/user/{USER}/portal/ink/mcp", http_client=http_client) as (r2, w2), \
                ClientSession(r2, w2) as http:
            await stdio.initialize()
            await http.initialize()

            def rest_call():
                r = rest.get(url, timeout=60)
                r.raise_for_status()
                assert r.json()["id"] == job_id

            async def mcp_call(session):
                result = await session.call_tool("job_status", {"job_id": job_id})
                if result.is_error or json.loads(result.content[0].text)["id"] != job_id:
                    raise RuntimeError(f"MCP call failed: {result.content}")

            for _ in range(10):  # warm-up, untimed: connections, imports, first thread
                rest_call()
                await mcp_call(stdio)
                await mcp_call(http)
            # round robin, one call of each at a time: a load change on the (shared) machine
            # weighs on all three alike; --block N asks N of each in a row instead
            done = 0
            while done < calls:
                n = min(block, calls - done)
                for _ in range(n):
                    start = time.perf_counter()
                    rest_call()
                    times["rest"].append(time.perf_counter() - start)
                for name, session in (("stdio", stdio), ("http", http)):
                    for _ in range(n):
                        start = time.perf_counter()
                        await mcp_call(session)
                        times[name].append(time.perf_counter() - start)
                done += n
                if done % 100 == 0 or done == calls:
                    log(f"{done:4d}/{calls}: median REST {statistics.median(times['rest']) * 1000:.1f} ms, "
                        f"MCP stdio {statistics.median(times['stdio']) * 1000:.1f} ms, "
                        f"MCP HTTP {statistics.median(times['http']) * 1000:.1f} ms")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--block", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the hub's work directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark runs the portal and a job as the test user alice")
    if subprocess.run([C.SQUEUE, "--noheader"], capture_output=True).returncode:
        sys.exit("Slurm is not usable; run scripts/dev-slurm start first")
    C.harness.ensure_unix_users([USER])
    C.bound_runtime(1200)
    tag = C.run_tag()
    workdir = C.make_workdir("ink-mcp-bench-")
    tracker = C.JobTracker()
    hub = C.harness.Hub(workdir, HUB_CONFIG, backend="slurm", catalogue=CATALOGUE)
    job_id = None
    try:
        hub.start()
        hub.start_and_wait(USER, "portal")
        r = hub.api("POST", f"/users/{USER}/tokens", json={"note": "mcp benchmark", "expires_in": 3600})
        r.raise_for_status()
        token = r.json()["token"]
        session = requests.Session()
        session.headers["Authorization"] = f"token {token}"
        jobs = f"{hub.url}/user/{USER}/portal/ink/api/v1/jobs"
        r = session.post(jobs, json={"command": ["true"], "name": f"bench{tag}"}, timeout=60)
        r.raise_for_status()
        job_id = r.json()["id"]
        tracker.ids.add(r.json()["backend_id"])
        deadline = time.monotonic() + 120
        while session.get(f"{jobs}/{job_id}", timeout=60).json()["state"] not in ("completed", "failed"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} did not end within 120 s")
            time.sleep(0.5)
        times = asyncio.run(measure(hub, token, job_id, args.calls, args.block))
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        p90 = {k: sorted(v)[int(len(v) * 0.9)] * 1000 for k, v in times.items()}
        stdio_ms, http_ms = med["stdio"] - med["rest"], med["http"] - med["rest"]
        log("")
        log(f"{'per call (ms)':24}{'REST':>10}{'MCP stdio':>12}{'MCP HTTP':>12}")
        log(f"{'median':24}{med['rest']:10.2f}{med['stdio']:12.2f}{med['http']:12.2f}")
        log(f"{'p90':24}{p90['rest']:10.2f}{p90['stdio']:12.2f}{p90['http']:12.2f}")
        log(f"overhead vs REST: stdio {stdio_ms:.2f} ms, HTTP {http_ms:.2f} ms (target <= 10 ms)")
        C.cancel_runtime_bound()
        log(f"RESULT mcp overhead_ms={max(stdio_ms, http_ms):.2f} stdio_ms={stdio_ms:.2f} http_ms={http_ms:.2f}")
        return 0
    finally:
        C.protect_cleanup()
        tracker.cancel_leftovers()
        try:
            for name in list(hub.user_model(USER).get("servers", {})):
                hub.api("DELETE", f"/users/{USER}/servers/{name}")
            time.sleep(1)
        except Exception:  # noqa: BLE001  (hub already gone)
            pass
        C.stop_hub(hub)
        if job_id:
            shutil.rmtree(os.path.join(os.path.expanduser(f"~{USER}"), ".ink", "jobs", job_id), ignore_errors=True)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
