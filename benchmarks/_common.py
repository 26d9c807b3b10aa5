"""Shared plumbing of the benchmark scripts: run-time bound, Slurm checks, job clean-up.

Benchmarks are plain scripts (``.venv/bin/python benchmarks/NAME.py``). Each one starts its own
hubs through :class:`tests.harness.Hub`, tags every job it submits with a random run tag, and on
the way out (success, failure, time-out, Ctrl-C or SIGTERM) stops its servers and hubs, cancels
whatever job with its tag is left, and checks that ``squeue`` no longer lists any of them.
Jobs of other users of the dev Slurm (tests running at the same time) are never touched.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import harness  # noqa: E402  (tests/harness.py)

VENV_BIN = Path(sys.prefix) / "bin"
SQUEUE = shutil.which("squeue") or "/usr/bin/squeue"
SBATCH = shutil.which("sbatch") or "/usr/bin/sbatch"
SCANCEL = shutil.which("scancel") or "/usr/bin/scancel"
# squeue's default state filter (pending, running, suspended, completing, configuring)
ACTIVE_STATES = {"PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "CONFIGURING", "REQUEUED",
                 "RESIZING", "STAGE_OUT", "SIGNALING", "STOPPED"}


class BenchTimeout(Exception):
    """The benchmark ran out of its time budget."""


class BenchInterrupted(Exception):
    """SIGTERM/SIGINT: clean up and leave."""


def log(msg: str = "") -> None:
    print(msg, flush=True)


# ---- run-time bound ---------------------------------------------------------------------------

def bound_runtime(seconds: int) -> None:
    """Raise BenchTimeout in the main thread after ``seconds`` (SIGALRM interrupts blocking calls),
    and turn SIGTERM into BenchInterrupted, so that ``finally`` clean-up always runs."""

    def on_alarm(_signum, _frame):
        raise BenchTimeout(f"benchmark exceeded its time budget of {seconds} s")

    def on_term(signum, _frame):
        raise BenchInterrupted(f"received signal {signum}")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(seconds)


def cancel_runtime_bound() -> None:
    signal.alarm(0)


def protect_cleanup() -> None:
    """During clean-up, a second timer/TERM must not abort clean-up half-way."""
    signal.alarm(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# ---- environment ------------------------------------------------------------------------------

def check_slurm() -> None:
    try:
        r = subprocess.run([SQUEUE, "--noheader", "--me"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        sys.exit(f"Slurm is not usable ({e}); run scripts/dev-slurm start first")
    if r.returncode:
        sys.exit(f"squeue failed ({r.stderr.strip()}); run scripts/dev-slurm start first")
    if os.geteuid() != 0:
        sys.exit("benchmarks run sessions as several Unix users and must run as root")
    try:
        import batchspawner  # noqa: F401
    except ImportError:
        sys.exit("batchspawner is not installed: .venv/bin/pip install -e '.[bench]'")


def run_tag() -> str:
    return secrets.token_hex(3)


def make_workdir(prefix: str) -> Path:
    """A temp dir the job users can traverse (wrappers, minimal server, job output live here)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def make_user_log_dirs(base: Path, users) -> str:
    """Per-user 0700 output directories under ``base``; returns an InkSpawner.log_dir value.

    ``log_dir`` only knows ``{home}``, so the layout is ``base/<home path>``; the dirs are
    created here (as root, then chowned) so that each user's ``mkdir -p`` finds them.
    """
    import pwd

    base.mkdir(mode=0o755, exist_ok=True)
    base.chmod(0o755)
    for user in users:
        entry = pwd.getpwnam(user)
        target = base / entry.pw_dir.lstrip("/")
        parent = target.parent
        parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        p = parent
        while p != base:
            p.chmod(0o755)
            p = p.parent
        target.mkdir(mode=0o700, exist_ok=True)
        os.chown(target, entry.pw_uid, entry.pw_gid)
    return str(base) + "{home}"


def install_minimal_server(workdir: Path) -> Path:
    """Copy minimal_server.py where every user can execute it (batchspawner needs the x bit)."""
    target = workdir / "minimal_server.py"
    shutil.copyfile(BENCH_DIR / "minimal_server.py", target)
    target.chmod(0o755)
    return target


# ---- squeue / jobs of this run ----------------------------------------------------------------

def squeue_rows(all_states: bool = False) -> list[dict]:
    argv = [SQUEUE, "--noheader", "--format=%i|%j|%k|%u|%T"]
    if all_states:
        argv.append("--states=all")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    rows = []
    for line in r.stdout.splitlines():
        parts = line.split("|", 4)
        if len(parts) == 5:
            rows.append(dict(zip(("id", "name", "comment", "user", "state"), parts)))
    return rows


class JobTracker:
    """Recognises this run's jobs: InkSpawner jobs by ``hub=<hub_id>`` in the comment,
    batchspawner jobs by their job name, plus any id seen in a hub log."""

    def __init__(self, ink_hub_id: str | None = None, bs_job_name: str | None = None):
        self.ink_hub_id = ink_hub_id
        self.bs_job_name = bs_job_name
        self.ids: set[str] = set()

    def ours(self, row: dict) -> bool:
        if row["id"] in self.ids:
            return True
        if self.ink_hub_id and f"hub={self.ink_hub_id}" in row["comment"].split(","):
            return True
        return bool(self.bs_job_name) and row["name"] == self.bs_job_name

    def active(self) -> list[dict]:
        return [r for r in squeue_rows() if self.ours(r) and r["state"] in ACTIVE_STATES]

    def wait_gone(self, timeout: float, ids: set[str] | None = None) -> list[dict]:
        """Wait until no job of this run (or of ``ids``) is pending/running/completing."""
        deadline = time.monotonic() + timeout
        while True:
            left = [r for r in self.active() if ids is None or r["id"] in ids]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def cancel_leftovers(self, timeout: float = 60) -> list[dict]:
        left = self.active()
        if left:
            ids = sorted({r["id"] for r in left})
            log(f"cleanup: scancel {len(ids)} leftover job(s) of this run: {' '.join(ids)}")
            subprocess.run([SCANCEL, *ids], capture_output=True, timeout=30)
            left = self.wait_gone(timeout)
            if left:
                subprocess.run([SCANCEL, "--signal=KILL", *[r["id"] for r in left]],
                               capture_output=True, timeout=30)
                left = self.wait_gone(15)
        return left


def stop_hub(hub) -> None:
    """Stop a harness Hub and make sure its configurable-http-proxy is gone too."""
    pid_file = hub.workdir / "proxy.pid"
    try:
        hub.stop()
    except Exception as e:  # noqa: BLE001
        log(f"cleanup: hub stop failed: {e}")
        if hub.proc and hub.proc.poll() is None:
            os.killpg(hub.proc.pid, signal.SIGKILL)
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 0)
    except OSError:
        return
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
    if b"configurable-http-proxy" in cmdline:
        os.kill(pid, signal.SIGTERM)


# ---- log parsing ------------------------------------------------------------------------------

_HUB_LINE = re.compile(r"^\[(\w) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (\S+) [^\]]*\] (.*)$")
_SLURM_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3})?)\] (.*)$")


def _local_ts(text: str, fmt: str) -> float:
    return datetime.strptime(text, fmt).timestamp()  # naive = local time, like the loggers


def hub_log_lines(path: Path, offset: int = 0) -> list[tuple[float, str]]:
    """(wall-clock time, message) of JupyterHub log lines after byte ``offset``."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read().decode(errors="replace")
    out = []
    for line in data.splitlines():
        m = _HUB_LINE.match(line)
        if m:
            out.append((_local_ts(m.group(2), "%Y-%m-%d %H:%M:%S.%f"), m.group(4)))
    return out


def slurm_log_path(key: str) -> Path | None:
    try:
        r = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in r.stdout.splitlines():
        k, _, v = line.partition("=")
        if k.strip() == key and v.strip() not in ("", "(null)"):
            p = Path(v.strip())
            return p if os.access(p, os.R_OK) else None
    return None


def slurmd_launch_times(path: Path | None, offset: int = 0) -> dict[str, float]:
    """job id → time slurmd launched its batch script ("Launching batch job N")."""
    if path is None:
        return {}
    times = {}
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read().decode(errors="replace")
    for line in data.splitlines():
        m = _SLURM_LINE.match(line)
        if not m:
            continue
        jm = re.match(r"Launching batch job (\d+)", m.group(2))
        if jm:
            fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in m.group(1) else "%Y-%m-%dT%H:%M:%S"
            times[jm.group(1)] = _local_ts(m.group(1), fmt)
    return times


def file_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path else 0
    except OSError:
        return 0


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_s(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def batchspawner_script(job_name: str, out_base: str) -> str:
    """batchspawner's stock SlurmSpawner script, minus --get-user-env (root only) and the keepvars
    export list (--export=ALL: the job gets exactly the env sbatch ran with, PATH included).
    The same CPU/memory/time request as the InkSpawner job (memory is not consumable here)."""
    return (
        "#!/bin/bash\n"
        f"#SBATCH --output={out_base}{{{{homedir}}}}/batchspawner-%j.log\n"
        f"#SBATCH --job-name={job_name}\n"
        "#SBATCH --chdir={{homedir}}\n"
        "#SBATCH --export=ALL\n"
        "{% if runtime %}#SBATCH --time={{runtime}}\n{% endif %}"
        "{% if memory %}#SBATCH --mem={{memory}}\n{% endif %}"
        "{% if nprocs %}#SBATCH --cpus-per-task={{nprocs}}\n{% endif %}"
        "\n"
        "set -euo pipefail\n"
        "\n"
        "trap 'echo SIGTERM received' TERM\n"
        "{{prologue}}\n"
        "{% if srun %}{{srun}} {% endif %}{{cmd}}\n"
        'echo "jupyterhub-singleuser ended gracefully"\n'
        "{{epilogue}}\n"
    )
