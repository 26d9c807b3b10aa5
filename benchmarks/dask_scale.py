"""Dask from a session on the real dev Slurm: time to the first worker, and the speed-up of a
histogram fill (a scikit-hep-testdata ROOT file read and filled many times) on 2 workers
over one process in the kernel. The dev Slurm is one 2-core node shared with the session and
other users, so the speed-up is bounded by 2 (and lowered by the node's load).

    .venv/bin/python benchmarks/dask_scale.py [--repeat 60]

Last line: ``RESULT dask first_worker_s=<s> workers=2 speedup=<x>``.
"""

from __future__ import annotations

import argparse
import json
import tempfile

import _common as C  # noqa: I001  (puts tests/ and the repo on sys.path)

import harness

CATALOGUE = """
defaults: {memory: 1G}
dask: {max_workers: 2, worker: {cpus: 1, memory: 1G, walltime: "0:20:00"}}
experiments:
  default:
    title: Everyone
    members: {everyone: true}
    apps: [jupyter]
"""

SETUP = r"""
import json, time, awkward as ak, numpy as np, uproot, skhep_testdata, ink_dask
from distributed import Client
path = skhep_testdata.data_path("uproot-HZZ.root")
def fill(repeat):
    import awkward as ak, numpy as np, uproot
    total = 0
    for _ in range(repeat):
        with uproot.open(path) as f:
            px = f["events"]["Muon_Px"].array()
        total = total + np.histogram(ak.to_numpy(ak.flatten(px)), bins=40, range=(-120, 120))[0]
    return total
"""

RUN = r"""
t0 = time.perf_counter(); single = fill({repeat}); t_single = time.perf_counter() - t0
t0 = time.perf_counter()
cluster = ink_dask.cluster(workers=2)
client = Client(cluster)
client.wait_for_workers(1, timeout=400); first = time.perf_counter() - t0
client.wait_for_workers(2, timeout=400)
workers = sorted(client.scheduler_info()["workers"])
client.gather([client.submit(fill, 1, workers=[w], pure=False) for w in workers])  # warm
t0 = time.perf_counter()
parts = client.gather([client.submit(fill, {repeat} // 2, workers=[w], pure=False) for w in workers])
t_two = time.perf_counter() - t0
print(json.dumps({{"first": first, "single": t_single, "two": t_two,
                  "equal": bool((sum(parts) == single).all())}}))
client.close(); cluster.close()
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=60)
    args = parser.parse_args()
    C.bound_runtime(900)
    harness.ensure_unix_users()
    hub = harness.Hub(tempfile.mkdtemp(prefix="bench-dask-"), "c.SlurmBackend.spawn_poll_interval = 0.5\n",
                      backend="slurm", catalogue=CATALOGUE).start()
    try:
        hub.start_and_wait("alice", "jupyter", timeout=300)
        token = hub.user_token("alice")
        kernel = harness.Kernel(hub, "alice", "jupyter", token)
        out, err = kernel.run(SETUP)
        assert err is None, err
        out, err = kernel.run(RUN.format(repeat=args.repeat), timeout=800)
        assert err is None, (out, err)
        r = json.loads(out.strip().splitlines()[-1])
        kernel.close()
        C.log(f"first worker connected {r['first']:.2f} s after ink_dask.cluster(workers=2)")
        C.log(f"fill x{args.repeat}: one process {r['single']:.2f} s, 2 workers {r['two']:.2f} s, "
              f"same histogram: {r['equal']}")
        speedup = r["single"] / r["two"]
        C.log(f"RESULT dask first_worker_s={r['first']:.2f} workers=2 speedup={speedup:.2f}")
    finally:
        for name in list(hub.user_model("alice").get("servers", {})):
            hub.api("DELETE", f"/users/alice/servers/{name}")
            try:
                hub.wait_stopped("alice", name, 120)
            except TimeoutError:
                pass
        hub.stop()


if __name__ == "__main__":
    main()
