"""Activity-aware wall time: active sessions get more time; idle ones do not (real Slurm)."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from ink_spawner.jobstatus import JobState, JobStatus
from ink_spawner.backends.slurm import parse_squeue
from ink_spawner.spawner import InkSpawner
from traitlets.config import Config

from .conftest import SLURM_HUB_CONFIG, wait_for

pytestmark = pytest.mark.slurm


def time_limit(job_id: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    return out.split("TimeLimit=")[1].split()[0]


def test_squeue_time_fields_are_parsed():
    st = parse_squeue("7|RUNNING|None|wn1|N/A|debug|1|N/A|1-02:00:00|10:05\n", {"7"})["7"]
    assert st.time_limit_s == 26 * 3600 and st.time_used_s == 605


@pytest.fixture
def sleeping_job(unix_users, dev_slurm):
    job_id = subprocess.run(["/usr/sbin/runuser", "-u", "alice", "--", "sbatch", "--parsable", "--time=20",
                             "--job-name=ink-extension-test", "--output=/dev/null", "--wrap=sleep 600"],
                            capture_output=True, text=True, check=True, cwd="/tmp").stdout.strip()
    yield job_id
    subprocess.run(["scancel", job_id])


def spawner_for(job_id: str, idle: timedelta) -> InkSpawner:
    spawner = InkSpawner(backend="slurm", config=Config({"WalltimeExtension": dict(
        extend_by="0:10:00", when_left="0:30:00", active_within="1:00:00", max_walltime="0:35:00")}))
    spawner.orm_spawner = SimpleNamespace(server=None, name="jupyter",
                                          last_activity=datetime.now(timezone.utc).replace(tzinfo=None) - idle)
    spawner.user = SimpleNamespace(name="alice")
    spawner.job_id, spawner.job_user = job_id, "alice"
    spawner.job_max_walltime = 72 * 3600  # the profile's limit
    return spawner


async def test_active_session_is_extended_up_to_the_maximum(sleeping_job):
    assert time_limit(sleeping_job) == "00:20:00"
    spawner = spawner_for(sleeping_job, idle=timedelta(minutes=5))
    status = JobStatus(sleeping_job, JobState.RUNNING, node="x", time_limit_s=20 * 60, time_used_s=60)
    await spawner.walltime_extension.maybe_extend(spawner, status)
    assert time_limit(sleeping_job) == "00:30:00"
    # the next poll may still see the old limit: it must not extend twice
    await spawner.walltime_extension.maybe_extend(spawner, status)
    assert time_limit(sleeping_job) == "00:30:00"
    # the next one stops at the maximum (35 min), not at 40
    await spawner.walltime_extension.maybe_extend(spawner, JobStatus(sleeping_job, JobState.RUNNING, node="x",
                                          time_limit_s=30 * 60, time_used_s=120))
    assert time_limit(sleeping_job) == "00:35:00"


async def test_extension_stops_at_the_profiles_limit(sleeping_job):
    """The site may allow 35 min in total, but this user's experiment only 25."""
    spawner = spawner_for(sleeping_job, idle=timedelta(minutes=5))
    spawner.job_max_walltime = 25 * 60
    await spawner.walltime_extension.maybe_extend(spawner, JobStatus(sleeping_job, JobState.RUNNING, node="x",
                                          time_limit_s=20 * 60, time_used_s=60))
    assert time_limit(sleeping_job) == "00:25:00"


async def test_idle_session_is_not_extended(sleeping_job):
    spawner = spawner_for(sleeping_job, idle=timedelta(hours=2))
    await spawner.walltime_extension.maybe_extend(spawner, JobStatus(sleeping_job, JobState.RUNNING, node="x",
                                          time_limit_s=20 * 60, time_used_s=60))
    assert time_limit(sleeping_job) == "00:20:00"


def test_hub_extends_an_active_session(hub_factory, dev_slurm):
    hub = hub_factory(SLURM_HUB_CONFIG, backend="slurm", catalogue="""
defaults: {memory: 1G}
site:
  walltime_extension: {extend_by: "0:10:00", when_left: "0:30:00", active_within: "1:00:00",
                       max_walltime: "0:40:00"}
experiments:
  default: {title: Everyone, members: {everyone: true}, apps: [jupyter]}
""")
    hub.start_and_wait("alice", "jupyter", {"walltime": "0:20:00"})
    job_id = hub.spawner_state("alice", "jupyter")["job_id"]
    # polls every 2 s: 20 → 30 → 40 minutes, then the maximum stops it
    wait_for(lambda: time_limit(job_id) == "00:40:00", 30, 0.5, "extended to the maximum")
    time.sleep(5)
    assert time_limit(job_id) == "00:40:00"
    assert "extended job" in hub.log_text()
    hub.stop_server("alice", "jupyter")
