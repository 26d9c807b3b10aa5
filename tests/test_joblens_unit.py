"""The Job Lens launcher on its own: it behaves like the command it runs (status, output) and
ends its samples file cleanly even when the end races a sample."""

import json
import os
import subprocess
import sys
import time

from ink_spawner.joblens.sampler import Sampler

LAUNCHER = [sys.executable, "-m", "ink_spawner.joblens"]


def run_lensed(tmp_path, *command, interval="0.05"):
    out = tmp_path / "metrics.jsonl"
    env = dict(os.environ, INK_LENS_INTERVAL=interval)
    r = subprocess.run([*LAUNCHER, "--out", str(out), "--cpus", "1", "--", *command],
                       capture_output=True, text=True, env=env, timeout=120)
    return r, [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def test_launcher_passes_status_and_output_through(tmp_path):
    r, lines = run_lensed(tmp_path, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    assert lines[0]["type"] == "start" and lines[-1]["type"] == "end"
    assert lines[-1]["exit_code"] == 7


def test_launcher_reports_a_signal_as_128_plus_n(tmp_path):
    r, lines = run_lensed(tmp_path, "sh", "-c", "kill -TERM $$")
    assert r.returncode == 128 + 15 and lines[-1]["exit_code"] == 143


def test_short_commands_never_abort_the_launcher(tmp_path):
    """A CI run saw `echo least` under the launcher end with 134 (SIGABRT): the sampling thread
    was still writing when the file closed and the interpreter shut down. Many short runs at
    the shortest interval must all end 0 with the end line last."""
    for i in range(40):
        d = tmp_path / str(i)
        d.mkdir()
        r, lines = run_lensed(d, "echo", "least")
        assert (r.returncode, r.stdout, r.stderr) == (0, "least\n", ""), (i, r.stderr)
        assert lines[-1]["type"] == "end" and [x.get("type") for x in lines].count("end") == 1


def test_stop_joins_the_sampling_thread(tmp_path):
    child = subprocess.Popen(["sleep", "5"])
    try:
        sampler = Sampler(child.pid, str(tmp_path / "m.jsonl"), interval=0.05)
        thread = sampler.start_thread()
        deadline = time.monotonic() + 30
        while sampler.totals["n"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        sampler.stop(exit_code=0)
        assert not thread.is_alive()
        lines = (tmp_path / "m.jsonl").read_text().splitlines()
        assert json.loads(lines[-1])["type"] == "end" and len(lines) >= 3
    finally:
        child.kill()
        child.wait()
