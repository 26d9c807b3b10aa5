"""The Slurm backend's argv and squeue parsing, with no scheduler involved."""

from pathlib import Path

from ink_spawner.jobstatus import JobState
from ink_spawner.backends.slurm import SlurmBackend, parse_squeue
from ink_spawner.jobspec import JobSpec


def make_spec(**kw):
    fields = dict(user="alice", name="jupyter", command=("/opt/ink/bin/ink-session", "--", "jupyterhub-singleuser"),
                  env={"JUPYTERHUB_API_TOKEN": "s3cret"}, workdir="/home/alice",
                  output_path="/home/alice/.ink/logs/jupyter.log", cpus=2, memory_mb=6144,
                  walltime_s=90 * 60 + 1, partition="debug", account="juno", qos="normal", gpus=1,
                  tags={"hub": "ink", "user": "alice", "server": "jupyter"})
    fields.update(kw)
    return JobSpec(**fields)


def test_sbatch_argv_is_a_list_with_a_fixed_script():
    backend = SlurmBackend()
    argv = backend.sbatch_argv(make_spec())
    assert argv[0] == "/usr/bin/sbatch"  # resolved in the system PATH, not the job's
    assert "--cpus-per-task=2" in argv and "--mem=6144M" in argv
    assert "--time=91" in argv  # rounded up to whole minutes
    assert "--partition=debug" in argv and "--account=juno" in argv and "--qos=normal" in argv
    assert "--gres=gpu:1" in argv
    assert "--comment=hub=ink,server=jupyter,user=alice" in argv
    script = argv.index(backend.job_script)
    assert argv[script + 1:] == ["/opt/ink/bin/ink-session", "--", "jupyterhub-singleuser"]
    text = Path(backend.job_script).read_text()
    assert 'exec "$@"' in text and "alice" not in text
    assert not any("s3cret" in a for a in argv), "the token must never be on a command line"


def test_optional_fields_are_left_out():
    argv = SlurmBackend().sbatch_argv(make_spec(partition=None, account=None, qos=None, gpus=0, tags={}))
    assert not any(a.startswith(("--partition", "--account", "--qos", "--gres", "--comment")) for a in argv)


SQUEUE = """\
10|RUNNING|None|wn042|2026-11-21T10:00:00|debug|100|2026-11-21T09:00:00
11|PENDING|Priority|(null)|2026-11-21T12:00:00|debug|50|2026-11-21T09:01:00
12|PENDING|Resources|(null)|N/A|debug|200|2026-11-21T09:02:00
13|PENDING|Priority|(null)|N/A|debug|50|2026-11-21T09:00:30
14|CANCELLED|None|wn042|2026-11-21T10:00:00|debug|0|2026-11-21T09:00:00
15|PENDING|Priority|(null)|N/A|gpu|10|2026-11-21T09:00:00
16|COMPLETING|None|wn001|N/A|debug|0|2026-11-21T09:00:00
"""


def test_parse_squeue_positions_reasons_and_ends():
    st = parse_squeue(SQUEUE, {"10", "11", "12", "13", "14", "15", "16", "99"})
    assert st["10"].state is JobState.RUNNING and st["10"].node == "wn042"
    # debug queue by priority, then submit time: 12 (200), 13 (50, earlier), 11 (50)
    assert (st["12"].position, st["13"].position, st["11"].position) == (1, 2, 3)
    assert st["11"].pending_total == 3 and st["11"].reason == "Priority"
    assert st["11"].expected_start == "2026-11-21T12:00:00" and st["12"].expected_start is None
    assert st["15"].position == 1 and st["15"].pending_total == 1
    assert st["14"].state is JobState.DONE and st["14"].reason == "cancelled"
    assert st["16"].state is JobState.DONE and not st["16"].settled and st["14"].settled
    assert "99" not in st  # unknown ids are left for the cache to mark as gone
    assert "position 3 of 3" in st["11"].describe() and "reason: Priority" in st["11"].describe()


def test_sstat_listing_of_many_jobs_adds_up_each_jobs_steps():
    from ink_spawner.backends.slurm import parse_sstat
    text = ("101.extern|1|00:00:00|0|cpu=00:00:00,energy=0,fs/disk=0,mem=0,pages=0,vmem=0|energy=0,fs/disk=0\n"
            "101.batch|1|00:00:29.500|524288K|cpu=00:00:29,energy=0,fs/disk=2332,mem=524288K,pages=0|"
            "energy=0,fs/disk=1024\n"
            "101.0|4|00:01:00|1G|cpu=00:04:00,fs/disk=1M,mem=4G|fs/disk=2M\n"
            "102.batch|2|1-00:00:01|2048|||\n"
            "garbage line\n")
    jobs = parse_sstat(text)
    assert set(jobs) == {"101", "102"}
    j = jobs["101"]
    assert j["cpu_s"] == 29 + 240  # TRES cpu is the total of all tasks of a step
    assert j["rss_max"] == 1 << 30  # the largest task's peak over the steps, not a sum
    assert (j["disk_read"], j["disk_write"]) == (2332 + (1 << 20), 1024 + (2 << 20))
    assert j["steps"] == 3
    # without TRES: the average CPU time per task times the tasks; a bare size is bytes
    assert jobs["102"]["cpu_s"] == 2 * (86400 + 1) and jobs["102"]["rss_max"] == 2048


def test_sstat_is_asked_once_for_all_jobs():
    backend = SlurmBackend(sstat="/usr/bin/sstat")
    seen = []

    async def run(argv, **kw):
        seen.append(argv)
        from ink_spawner.backends.base import CommandResult
        return CommandResult(0, "7.batch|1|00:00:02|10K|cpu=00:00:02|\n", "")

    backend.run = run
    import asyncio
    assert asyncio.run(backend.usage({"12", "7", "not-a-job"})) == {
        "7": {"cpu_s": 2.0, "rss_max": 10240, "disk_read": 0, "disk_write": 0, "steps": 1}}
    (argv,) = seen
    assert argv[0] == "/usr/bin/sstat" and "--jobs=7,12" in argv and "--allsteps" in argv
