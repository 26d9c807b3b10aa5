"""HTCondor backend: sessions as HTCondor jobs, built with the htcondor2 bindings.

Submission runs as the user: the hub starts ``ink-condor-job submit`` through runuser (the
helper in :mod:`ink_spawner.condor_job`), hands it the submit description and the session's
environment as JSON on stdin, and reads back the job id. The environment, which holds the
server's API token, never enters the job ClassAd (job ads are readable by every user with
``condor_q -long``): the helper writes it to a 0600 file that the job reads at start.

Status comes from ONE ``Schedd.query`` per interval for every INK job on the schedd (and the
idle jobs they queue with, for queue positions), run in a thread so the hub's event loop never
blocks on the schedd.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import sys
import time

from traitlets import Dict, List, Unicode, default, validate

from ..condor_job import open_schedd
from ..jobspec import JobSpec
from ..jobstatus import BackendError, JobState, JobStatus
from .base import Backend, minimal_env

# JobStatus codes of HTCondor job ads
IDLE, RUNNING, REMOVED, COMPLETED, HELD, TRANSFERRING, SUSPENDED = 1, 2, 3, 4, 5, 6, 7

#: job-ad attribute → (figure in JobStatus.usage, factor to seconds or bytes)
USAGE_ATTRIBUTES = {
    "RemoteUserCpu": ("cpu_user_s", 1),  # seconds
    "RemoteSysCpu": ("cpu_sys_s", 1),  # seconds
    "ResidentSetSize": ("rss", 1024),  # KiB: the largest resident memory seen
    "MemoryUsage": ("memory_peak", 1 << 20),  # MiB: peak memory (an expression in real ads)
    "DiskUsage": ("disk_usage", 1024),  # KiB: the job's scratch directory
}

PROJECTION = [
    "ClusterId", "ProcId", "JobStatus", "Owner", "AcctGroup", "JobPrio", "QDate", "RemoteHost",
    "LastRemoteHost", "HoldReason", "LastRejMatchReason", "NumJobMatches", "ExitCode",
    "RemoveReason", "InkHub", "EnteredCurrentStatus", "MaxWallTime",
    # what the job used, as the shadow last updated the ad (carried in JobStatus.usage)
    *USAGE_ATTRIBUTES,
]
# every INK job, plus every idle job (to place ours in the queue of its group)
QUERY_CONSTRAINT = "(InkHub =!= undefined) || (JobStatus == 1)"

_JOB_ID_RE = re.compile(r"^[0-9]+\.[0-9]+$")
# submit commands a site may set in extra_submit (everything else is ours to decide)
_SUBMIT_KEY_RE = re.compile(r"^(\+|MY\.)?[A-Za-z_][A-Za-z0-9_.]*$")


def condor_arguments(argv: list[str] | tuple[str, ...]) -> str:
    """Quote an argv in HTCondor's "new" arguments syntax.

    The whole string is double-quoted; each argument is single-quoted; a literal ' is written
    '' and a literal " is written "". No value is ever left to word splitting.
    """
    parts = []
    for arg in argv:
        if "\n" in arg or "\0" in arg:
            raise BackendError(f"argument {arg!r} cannot be passed to HTCondor")
        if "$(" in arg:  # submit-language macro expansion would rewrite it
            raise BackendError(f"argument {arg!r} contains '$(' which HTCondor would expand")
        parts.append("'" + arg.replace("'", "''").replace('"', '""') + "'")
    return '"' + " ".join(parts) + '"'


def node_of(remote_host: str | None) -> str | None:
    """'slot1_2@wn042.cluster.org' → 'wn042.cluster.org'."""
    if not remote_host:
        return None
    return remote_host.rsplit("@", 1)[-1]


class HTCondorBackend(Backend):
    """Sessions as HTCondor jobs."""

    name = "htcondor"
    usage_source = "job ad"  # carried by the one status query: no usage query of its own

    schedd_name = Unicode(
        "",
        help="Name of the schedd to submit to and query ('' = the local schedd of the hub host, "
        "as HTCondor's configuration on the hub names it).",
    ).tag(config=True)

    submit_helper = List(
        Unicode(),
        help="argv of the helper that submits and removes jobs as the user (`ink-condor-job`, "
        "an absolute path on the hub host); its subcommand and arguments are appended.",
    ).tag(config=True)

    @default("submit_helper")
    def _submit_helper_default(self):
        return [os.path.join(sys.prefix, "bin", "ink-condor-job")]

    @validate("submit_helper")
    def _validate_submit_helper(self, proposal):
        if not proposal.value or not os.path.isabs(proposal.value[0]):
            raise ValueError("submit_helper: an argv whose program is an absolute path")
        return proposal.value

    env_dir = Unicode(
        "{home}/.ink/sessions",
        help="Directory (created 0700 by the user's helper) of the 0600 files that carry a "
        "session's environment to its job. Must be visible on the execute nodes (shared home); "
        "it is also listed in transfer_input_files for pools without a shared file system.",
    ).tag(config=True)

    accounting_group = Unicode(
        "",
        help="accounting_group for sessions when the JobSpec names no account (e.g. 'group_ink'). "
        "The spec's account (an experiment's group from the site catalogue) takes precedence.",
    ).tag(config=True)

    concurrency_limit_template = Unicode(
        "ink_{app}",
        help="concurrency_limits of every session ({app}, {user} are filled in), so the "
        "negotiator can cap interactive sessions per app or user; '' for none.",
    ).tag(config=True)

    extra_submit = Dict(
        help="Site submit commands added to every session job, e.g. {'requirements': "
        "'(TARGET.IsInteractive =?= true)'}. Set by the admin only, never from user input; "
        "commands INK sets itself cannot be overridden here.",
    ).tag(config=True)

    # ---- building the submit description ----------------------------------------------------

    def env_file_for(self, spec: JobSpec) -> str:
        home = spec.workdir
        return f"{self.env_dir.format(home=home)}/{spec.name}.env"

    def submit_description(self, spec: JobSpec) -> dict[str, str]:
        """The submit commands of a session: plain values, no templates with user data."""
        env_file = self.env_file_for(spec)
        walltime = max(60, int(spec.walltime_s))
        description = {
            "universe": "container" if spec.image else "vanilla",
            "executable": spec.command[0],
            "arguments": condor_arguments(spec.command[1:]),
            "initialdir": spec.workdir,
            "output": spec.output_path,
            "error": spec.output_path + ".err",
            "getenv": "false",
            # ink-session sends its own and the server's stderr to the output file, which is
            # the one the spawner shows when a session fails; .err keeps what comes before
            "environment": condor_arguments([f"INK_ENV_FILE={env_file}", "INK_MERGE_STDERR=1"]),
            "should_transfer_files": "IF_NEEDED",
            "when_to_transfer_output": "ON_EXIT",
            "transfer_input_files": env_file,
            "request_cpus": str(spec.cpus),
            "request_memory": f"{spec.memory_mb}MB",
            # the scheduler enforces the wall time of a running session; MaxWallTime is an
            # attribute so that the activity-aware extension can raise it
            "periodic_remove": "(JobStatus == 2) && (time() - EnteredCurrentStatus > MaxWallTime)",
            "MY.InkHub": f'"{spec.tags.get("hub", "ink")}"',
            "MY.InkUser": f'"{spec.tags.get("user", spec.user)}"',
            "MY.InkServer": f'"{spec.tags.get("server", spec.name)}"',
            "MY.InkApp": f'"{spec.name}"',
            "MY.JobBatchName": f'"{spec.job_name}"',
            "MY.MaxWallTime": str(walltime),
        }
        if spec.gpus:
            description["request_gpus"] = str(spec.gpus)
        if spec.image:
            description["container_image"] = spec.image
        group = spec.account or self.accounting_group
        if group:
            description["accounting_group"] = group
            description["accounting_group_user"] = spec.user
        if self.concurrency_limit_template:
            description["concurrency_limits"] = self.concurrency_limit_template.format(
                app=spec.name, user=spec.user).replace("-", "_")  # limit names: [A-Za-z0-9_.]
        if spec.requirements:
            site = self.extra_submit.get("requirements")
            description["requirements"] = f"({site}) && ({spec.requirements})" if site else spec.requirements
        for key, value in self.extra_submit.items():
            if not _SUBMIT_KEY_RE.match(key) or not isinstance(value, str):
                raise BackendError(f"extra_submit: invalid submit command {key!r}")
            description.setdefault(key, value)
        return description

    # ---- the interface ----------------------------------------------------------------------

    async def submit(self, spec: JobSpec) -> str:
        request = {
            "description": self.submit_description(spec),
            "env": spec.env,
            "env_file": self.env_file_for(spec),
        }
        result = await self._helper(spec.user, ["submit"], json.dumps(request))
        job_id = result.get("job_id", "")
        if not _JOB_ID_RE.match(job_id):
            raise BackendError(f"the submit helper returned no job id: {result!r}")
        # The helper runs as the user, who could steer it: trust the id only if the schedd
        # says that job is the user's own and tagged for this session.
        cluster, proc = job_id.split(".")
        ads = await asyncio.to_thread(self._query_ads, f"ClusterId == {int(cluster)} && ProcId == {int(proc)}",
                                      ["Owner", "InkServer"], "job check")
        if not ads or ads[0].get("Owner") != spec.user or ads[0].get("InkServer") != spec.tags.get("server", spec.name):
            raise BackendError(f"job {job_id} reported by the submit helper is not this session's job")
        return job_id

    async def cancel(self, job_id: str, user: str) -> None:
        if not _JOB_ID_RE.match(job_id):
            raise BackendError(f"invalid HTCondor job id {job_id!r}")
        # The env file stays (0600): its token is revoked by the hub when the server stops,
        # and the next submit of this app replaces it.
        await self._helper(user, ["remove", job_id], "")

    async def extend(self, job_id: str, user: str, time_limit_s: int) -> None:
        if not _JOB_ID_RE.match(job_id):
            raise BackendError(f"invalid HTCondor job id {job_id!r}")
        await self._helper(user, ["extend", job_id, str(int(time_limit_s))], "")

    async def query(self, job_ids: set[str]) -> dict[str, JobStatus]:
        ads = await asyncio.to_thread(self._query_ads, QUERY_CONSTRAINT, PROJECTION, "status")
        return statuses_from_ads(ads, job_ids)

    async def queue_summary(self) -> dict[str, dict[str, int]]:
        ads = await asyncio.to_thread(self._query_ads, "JobStatus == 1 || JobStatus == 2",
                                      ["AcctGroup", "JobStatus"], "summary")
        summary: dict[str, dict[str, int]] = {}
        for ad in ads:
            group = str(ad.get("AcctGroup") or "(no group)")
            counts = summary.setdefault(group, {"running": 0, "pending": 0})
            counts["running" if ad.get("JobStatus") == RUNNING else "pending"] += 1
        return summary

    # ---- helpers ----------------------------------------------------------------------------

    _schedd_obj = None

    def _schedd(self):
        """The schedd client, located once (a remote schedd through the collector) and reused;
        forgotten after a failure so that the next query locates it again."""
        if self._schedd_obj is None:
            self._schedd_obj = open_schedd(self.schedd_name)
        return self._schedd_obj

    def _query_ads(self, constraint: str, projection: list[str], what: str) -> list:
        """One Schedd.query (blocking: called in a thread)."""
        try:
            return list(self._schedd().query(constraint=constraint, projection=projection))
        except Exception as e:  # the bindings raise HTCondorException and friends
            self._schedd_obj = None
            raise BackendError(f"The HTCondor schedd did not answer the {what} query: {e}") from None

    async def _helper(self, user: str, args: list[str], stdin: str) -> dict:
        argv = [*self.as_user(user), *self.submit_helper, "--schedd-name", self.schedd_name, *args]
        result = await self.run(argv, env=minimal_env(_passthrough_env()), stdin=stdin)
        try:
            reply = json.loads(result.stdout or "{}")
        except ValueError:
            reply = {}
        if result.returncode or "error" in reply:
            detail = reply.get("error") or result.stderr.strip().splitlines()[-1:] or ["no message"]
            raise BackendError(f"HTCondor {args[0]} failed: {detail if isinstance(detail, str) else detail[0]}")
        return reply


def _passthrough_env() -> dict[str, str]:
    """HTCondor client configuration the helper needs (not secrets of the hub)."""
    keep = ("CONDOR_CONFIG", "_CONDOR_SCHEDD_HOST", "_CONDOR_COLLECTOR_HOST", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if k in keep or k.startswith("_CONDOR_SEC_")}


def statuses_from_ads(ads, job_ids: set[str]) -> dict[str, JobStatus]:
    """Map job ads to statuses; idle jobs get their place among the idle jobs of their group."""
    rows = []
    for ad in ads:
        try:
            job_id = f"{int(ad['ClusterId'])}.{int(ad['ProcId'])}"
            status = int(ad["JobStatus"])
        except (KeyError, ValueError, TypeError):
            continue
        rows.append((job_id, status, ad))

    def group_of(ad) -> str:
        return str(ad.get("AcctGroup") or ad.get("Owner") or "")

    idle_by_group: dict[str, list] = {}
    for job_id, status, ad in rows:
        if status == IDLE:
            idle_by_group.setdefault(group_of(ad), []).append(
                (-_int(ad.get("JobPrio")), _int(ad.get("QDate")), _numeric(job_id), job_id))
    for queue in idle_by_group.values():
        queue.sort()

    statuses = {}
    for job_id, status, ad in rows:
        if job_id not in job_ids:
            continue
        if status == RUNNING or status == TRANSFERRING:
            since = ad.get("EnteredCurrentStatus")
            statuses[job_id] = JobStatus(
                job_id, JobState.RUNNING, node=node_of(ad.get("RemoteHost")),
                time_limit_s=_int(ad.get("MaxWallTime")) or None,
                time_used_s=int(time.time()) - _int(since) if since is not None else None,
                usage=usage_from_ad(ad))
        elif status == IDLE:
            queue = [entry[-1] for entry in idle_by_group.get(group_of(ad), [])]
            reason = ad.get("LastRejMatchReason")
            matches = _int(ad.get("NumJobMatches"))
            if not reason:
                reason = "waiting for a match" if not matches else f"matched {matches} times before"
            statuses[job_id] = JobStatus(
                job_id, JobState.PENDING, reason=str(reason), position=queue.index(job_id) + 1,
                pending_total=len(queue), partition=ad.get("AcctGroup") or None)
        elif status == SUSPENDED:
            statuses[job_id] = JobStatus(job_id, JobState.PENDING, reason="suspended")
        elif status == HELD:
            statuses[job_id] = JobStatus(job_id, JobState.DONE, exit_code=1, settled=False,
                                         reason=f"held: {ad.get('HoldReason') or 'no reason given'}")
        else:
            label = "completed" if status == COMPLETED else "removed"
            statuses[job_id] = JobStatus(
                job_id, JobState.DONE, reason=label, node=node_of(ad.get("LastRemoteHost")),
                exit_code=_int(ad.get("ExitCode")) if status == COMPLETED else 1,
                usage=usage_from_ad(ad))
    return statuses


def usage_from_ad(ad) -> dict | None:
    """The job ad's usage attributes in seconds and bytes (``cpu_s`` = user + system), or None
    if it has none yet (the shadow updates them every SHADOW_QUEUE_UPDATE_INTERVAL)."""
    figures = {}
    for attribute, (name, factor) in USAGE_ATTRIBUTES.items():
        value = _ad_number(ad, attribute)
        if value is not None:
            figures[name] = round(value * factor, 3) if factor == 1 else int(value * factor)
    if not figures:
        return None
    if "cpu_user_s" in figures or "cpu_sys_s" in figures:
        figures["cpu_s"] = round(figures.get("cpu_user_s", 0) + figures.get("cpu_sys_s", 0), 3)
    return {"source": "job ad", **figures}


def _ad_number(ad, attribute: str) -> float | None:
    """A number from a job ad; expressions (MemoryUsage) are evaluated in the ad."""
    if attribute not in ad:
        return None
    try:
        value = ad.eval(attribute) if hasattr(ad, "eval") else ad[attribute]
    except Exception:  # an expression that does not evaluate here
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    # the job's owner may edit these attributes (condor_qedit): an infinite, NaN or absurd value
    # must not break the one status query that every session of the hub depends on
    if not math.isfinite(value) or not 0 <= value < 1e18:
        return None
    return float(value)


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _numeric(job_id: str) -> tuple[int, int]:
    cluster, _, proc = job_id.partition(".")
    return int(cluster), int(proc)


__all__ = ["HTCondorBackend", "condor_arguments", "statuses_from_ads", "usage_from_ad",
           "QUERY_CONSTRAINT", "PROJECTION", "USAGE_ATTRIBUTES"]
