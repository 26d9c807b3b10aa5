"""Slurm backend: sbatch / squeue / scancel, argv lists only, submitted as the user."""

from __future__ import annotations

import math
from importlib.resources import files

from traitlets import List, Unicode, default

from ..jobspec import JobSpec, dask_worker_job_name
from ..jobstatus import BackendError, JobState, JobStatus
from .base import Backend, minimal_env, resolve_command

# squeue states → INK states (CONFIGURING: allocated, nodes booting; SUSPENDED: not reachable)
_PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD",
            "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT"}
_RUNNING = {"RUNNING"}
_FIELDS = "%i|%T|%r|%N|%S|%P|%Q|%V|%l|%M"
#: sstat's figures of each running step (the usage query); TRES "In" = read, "Out" = written
_SSTAT_FIELDS = "JobID,NTasks,AveCPU,MaxRSS,TRESUsageInTot,TRESUsageOutTot"


class SlurmBackend(Backend):
    """Sessions as Slurm batch jobs."""

    name = "slurm"

    sbatch = Unicode(
        "sbatch",
        help="sbatch command: an absolute path, or a name looked up in the standard system PATH "
        "(/usr/local/bin, /usr/bin, ...), never in the job's PATH.",
    ).tag(config=True)
    squeue = Unicode(
        "squeue", help="squeue command (the one status query per interval); looked up like `sbatch`."
    ).tag(config=True)
    sstat = Unicode(
        "sstat",
        help="sstat command (the usage query of running jobs: one call for all of them, at most "
        "every `usage_interval`); looked up like `sbatch`. Needs a JobAcctGatherType other than "
        "none in slurm.conf.",
    ).tag(config=True)
    scancel = Unicode("scancel", help="scancel command; looked up like `sbatch`.").tag(config=True)
    scontrol = Unicode(
        "scontrol",
        help="scontrol command, used (as the hub, which must be a Slurm operator) only to extend "
        "the wall time of active sessions; looked up like `sbatch`.",
    ).tag(config=True)

    extra_sbatch_args = List(
        Unicode(),
        help="Site-wide sbatch options added to every session job, e.g. ['--constraint=interactive']. "
        "Set by the site admin only; never built from user input.",
    ).tag(config=True)

    job_script = Unicode(
        help="Batch script given to sbatch. The default is a fixed two-line script that execs its "
        "arguments, so no value is ever interpolated into a script.",
    ).tag(config=True)

    @default("job_script")
    def _job_script_default(self):
        return str(files("ink_spawner.backends").joinpath("slurm_job.sh"))

    def sbatch_argv(self, spec: JobSpec) -> list[str]:
        """The whole sbatch command line for a spec (also used by tests)."""
        argv = [
            resolve_command(self.sbatch),
            "--parsable",
            f"--job-name={spec.job_name}",
            f"--output={spec.output_path}",
            f"--chdir={spec.workdir}",
            f"--cpus-per-task={spec.cpus}",
            f"--mem={spec.memory_mb}M",
            f"--time={max(1, math.ceil(spec.walltime_s / 60))}",
            "--export=ALL",
            # a session whose node fails has lost its server: it ends (the panel says why),
            # it is never requeued to start again unannounced on another node
            "--no-requeue",
        ]
        if spec.partition:
            argv.append(f"--partition={spec.partition}")
        if spec.account:
            argv.append(f"--account={spec.account}")
        if spec.qos:
            argv.append(f"--qos={spec.qos}")
        if spec.gpus:
            argv.append(f"--gres=gpu:{spec.gpus}")
        if spec.tags:
            argv.append("--comment=" + ",".join(f"{k}={v}" for k, v in sorted(spec.tags.items())))
        argv.extend(self.extra_sbatch_args)
        argv.append(self.job_script)
        argv.extend(self.job_command(spec))
        return argv

    async def submit(self, spec: JobSpec) -> str:
        env = minimal_env()
        env.update(spec.env)
        result = await self.run([*self.as_user(spec.user), *self.sbatch_argv(spec)], env=env)
        if result.returncode:
            raise BackendError(_scheduler_message("sbatch", result.stderr))
        # --parsable prints "jobid" or "jobid;cluster"
        job_id = result.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise BackendError(f"sbatch printed no job id: {result.stdout.strip()!r}")
        return job_id

    async def query(self, job_ids: set[str]) -> dict[str, JobStatus]:
        result = await self.run([resolve_command(self.squeue), "--noheader", "--states=all", f"--format={_FIELDS}"])
        if result.returncode:
            raise BackendError(_scheduler_message("squeue", result.stderr))
        return parse_squeue(result.stdout, job_ids)

    usage_source = "sstat"
    usage_query = True

    async def usage(self, job_ids: set[str]) -> dict[str, dict]:
        ids = sorted((j for j in job_ids if j.isdigit()), key=int)
        if not ids:
            return {}
        result = await self.run([resolve_command(self.sstat), "--allsteps", f"--jobs={','.join(ids)}",
                                 "--noheader", "--parsable2", "--noconvert",
                                 f"--format={_SSTAT_FIELDS}"])
        # sstat reports an error for a job without running steps (just ended) and prints the
        # others: only a failure with nothing printed is the scheduler's
        if result.returncode and not result.stdout.strip():
            message = result.stderr.lower()
            if "no steps running" in message or "couldn't get steps" in message:
                return {}
            raise BackendError(_scheduler_message("sstat", result.stderr))
        return parse_sstat(result.stdout)

    async def extend(self, job_id: str, user: str, time_limit_s: int) -> None:
        if not job_id.isdigit():
            raise BackendError(f"invalid Slurm job id {job_id!r}")
        minutes = max(1, math.ceil(time_limit_s / 60))
        # raising a limit is an operator's action: users may only lower their own
        result = await self.run([resolve_command(self.scontrol), "update", f"JobId={job_id}",
                                 f"TimeLimit={minutes}"])
        if result.returncode:
            raise BackendError(_scheduler_message("scontrol", result.stderr))

    async def queue_summary(self) -> dict[str, dict[str, int]]:
        result = await self.run([resolve_command(self.squeue), "--noheader",
                                 "--states=PENDING,RUNNING", "--format=%P|%T"])
        if result.returncode:
            raise BackendError(_scheduler_message("squeue", result.stderr))
        summary: dict[str, dict[str, int]] = {}
        for line in result.stdout.splitlines():
            partition, _, state = line.strip().partition("|")
            if not partition:
                continue
            counts = summary.setdefault(partition, {"running": 0, "pending": 0})
            counts["running" if state == "RUNNING" else "pending"] += 1
        return summary

    def end_reason(self, status: JobStatus, output_tail: str) -> str | None:
        # Without cgroups, a job killed by the memory gatherer (OverMemoryKill) ends FAILED;
        # slurmstepd says why in the job's output ("Exceeded job memory limit").
        text = output_tail.lower()
        if "exceeded job memory limit" in text or "exceeded memory limit" in text or "oom-kill" in text:
            return "out_of_memory"
        if "due to time limit" in text:
            return "timeout"
        if "due to node failure" in text:
            return "node_fail"
        return status.reason

    async def cancel(self, job_id: str, user: str) -> None:
        if not job_id.isdigit():
            raise BackendError(f"invalid Slurm job id {job_id!r}")
        result = await self.run([*self.as_user(user), resolve_command(self.scancel), job_id])
        if result.returncode and "Invalid job id" not in result.stderr:
            raise BackendError(_scheduler_message("scancel", result.stderr))


    async def cancel_session_workers(self, job_id: str, user: str) -> None:
        if not job_id.isdigit():
            raise BackendError(f"invalid Slurm job id {job_id!r}")
        result = await self.run([*self.as_user(user), resolve_command(self.scancel),
                                 f"--name={dask_worker_job_name(job_id)}", f"--user={user}"])
        if result.returncode:
            raise BackendError(_scheduler_message("scancel", result.stderr))


def _scheduler_message(command: str, stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    detail = lines[-1] if lines else "no message"
    if "Unable to contact slurm controller" in stderr or "Connection refused" in stderr:
        return f"The Slurm controller is not reachable ({command}: {detail})"
    return f"{command} failed: {detail}"


def parse_squeue(text: str, job_ids: set[str]) -> dict[str, JobStatus]:
    """Turn one squeue listing of all jobs into statuses of the watched ones.

    Queue position needs every pending job of the partition, which is why the query lists all
    jobs rather than only ours.
    """
    rows = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 8:
            continue
        job_id, state, reason, nodes, start, partition, priority, submitted = parts[:8]
        limit_s = _duration_s(parts[8]) if len(parts) > 8 else None
        used_s = _duration_s(parts[9]) if len(parts) > 9 else None
        state = state.split()[0].rstrip("+") if state else ""
        try:
            prio = int(priority)
        except ValueError:
            prio = 0
        rows.append((job_id, state, reason, nodes, start, partition, prio, submitted, limit_s, used_s))

    queues: dict[str, list] = {}
    for row in rows:
        if row[1] == "PENDING":
            for part in row[5].split(","):
                queues.setdefault(part, []).append(row)
    for queue in queues.values():
        queue.sort(key=lambda r: (-r[6], r[7], _numeric(r[0])))

    statuses = {}
    for job_id, state, reason, nodes, start, partition, _prio, _sub, limit_s, used_s in rows:
        if job_id not in job_ids:
            continue
        if state in _RUNNING:
            statuses[job_id] = JobStatus(job_id, JobState.RUNNING, node=nodes.split(",")[0],
                                         partition=partition, time_limit_s=limit_s, time_used_s=used_s)
        elif state in _PENDING:
            position = total = None
            queue = queues.get(partition.split(",")[0])
            if state == "PENDING" and queue:
                ids = [r[0] for r in queue]
                position, total = ids.index(job_id) + 1, len(ids)
            expected = start if start and start not in ("N/A", "Unknown", "None") else None
            statuses[job_id] = JobStatus(
                job_id, JobState.PENDING, reason=reason if state == "PENDING" else state.lower(),
                position=position, pending_total=total, expected_start=expected,
                partition=partition,
            )
        else:
            statuses[job_id] = JobStatus(
                job_id, JobState.DONE, reason=state.lower() if state else None,
                node=nodes or None, partition=partition,
                exit_code=0 if state == "COMPLETED" else 1, settled=state != "COMPLETING",
            )
    return statuses


def parse_sstat(text: str) -> dict[str, dict]:
    """``sstat --allsteps --parsable2`` of many jobs → figures per job, its steps added up.

    ``cpu_s``: CPU seconds of all tasks of all running steps (TRES cpu, else AveCPU × NTasks);
    ``rss_max``: the largest task's peak resident memory (MaxRSS) over the steps, bytes;
    ``disk_read``/``disk_write``: bytes read and written by the tasks (TRES fs/disk);
    ``steps``: running steps seen (batch, extern, srun steps)."""
    jobs: dict[str, dict] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 6 or not parts[0]:
            continue
        step, ntasks, ave_cpu, max_rss, tres_in, tres_out = parts[:6]
        job_id = step.split(".")[0]
        if not job_id.isdigit():
            continue
        tin, tout = _tres(tres_in), _tres(tres_out)
        cpu = _cpu_s(tin.get("cpu", ""))
        if cpu is None:
            cpu = (_cpu_s(ave_cpu) or 0.0) * (int(ntasks) if ntasks.isdigit() else 1)
        figures = jobs.setdefault(job_id, {"cpu_s": 0.0, "rss_max": 0, "disk_read": 0,
                                           "disk_write": 0, "steps": 0})
        figures["cpu_s"] = round(figures["cpu_s"] + cpu, 3)
        figures["rss_max"] = max(figures["rss_max"], _bytes(max_rss) or 0)
        figures["disk_read"] += _bytes(tin.get("fs/disk", "")) or 0
        figures["disk_write"] += _bytes(tout.get("fs/disk", "")) or 0
        figures["steps"] += 1
    return jobs


def _tres(text: str) -> dict[str, str]:
    """'cpu=00:00:04,fs/disk=2332,mem=1240K' → {'cpu': '00:00:04', ...}."""
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def _bytes(text: str) -> int | None:
    """Slurm sizes ('1240K', '1.5G', '2332') → bytes; a bare number is bytes."""
    text = text.strip()
    if not text:
        return None
    unit = text[-1].upper() if text[-1].isalpha() else ""
    number = text[:-1] if unit else text
    try:
        return int(float(number) * _UNITS[unit])
    except (KeyError, ValueError):
        return None


def _split_days(text: str) -> tuple[int, str] | None:
    """Slurm's optional leading 'D-' of a time → (days, the rest); None if D is no number."""
    if "-" not in text:
        return 0, text
    head, _, rest = text.partition("-")
    return (int(head), rest) if head.isdigit() else None


def _cpu_s(text: str) -> float | None:
    """Slurm CPU times ('[D-][HH:]MM:SS[.mmm]') → seconds."""
    split = _split_days(text.strip())
    if split is None or not split[1]:
        return None
    days, text = split
    try:
        seconds = 0.0
        for part in text.split(":"):
            seconds = seconds * 60 + float(part)
    except ValueError:
        return None
    return days * 86400 + seconds


def _duration_s(text: str) -> int | None:
    """Slurm's [days-]hours:minutes:seconds (or minutes:seconds) → seconds; None for UNLIMITED."""
    split = _split_days(text.strip())
    if split is None:
        return None
    days, text = split
    parts = text.split(":")
    if not parts or not all(p.isdigit() for p in parts) or len(parts) > 3:
        return None
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + int(p)
    return days * 86400 + seconds


def _numeric(job_id: str) -> tuple[int, str]:
    head = job_id.split("_")[0]
    return (int(head) if head.isdigit() else 0, job_id)


__all__ = ["SlurmBackend", "parse_squeue", "parse_sstat"]
