"""A job request checked against the user's batch profile, turned into a JobSpec.

The hub hands the portal the user's profile (``INK_WORKFLOW``: backend, and per experiment the
defaults, limits, routing and images). Everything a request asks for is checked here, before
anything is submitted; a refusal names the field and the reason (HTTP 400).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ink_spawner.jobspec import (ENV_KEY_RE, NAME_RE, JobSpec, JobSpecError, parse_memory_mb,
                                 parse_walltime_s)
from ink_spawner.workflow import PROFILE_ENV

#: the fields of a job request and their JSON types
REQUEST_FIELDS = {"command": list, "script": str, "name": str, "experiment": str, "cpus": int,
                  "memory": str, "gpus": int, "walltime": str, "image": str, "workdir": str,
                  "env": dict}
MAX_SCRIPT = 1 << 20  # bytes
MAX_ARGS = 4096

# A constant program, never built from input: its first two arguments are the job's stderr
# and exit-status files, the rest is the job's argv, run as "$@". Stderr and exit status are
# kept in the job's directory, so that both survive the scheduler forgetting the job.
JOB_WRAPPER = ('err=$1 status_file=$2; shift 2; "$@" 2>>"$err"; status=$?; '
               'echo "$status" >"$status_file"; exit "$status"')


class RequestError(ValueError):
    """A job request is refused; ``field`` names what is wrong (HTTP 400)."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True)
class Profile:
    backend: str
    experiments: dict

    @classmethod
    def from_env(cls, environ=os.environ) -> Profile | None:
        """The profile the hub passed to this server, or None (not started by an INK hub)."""
        text = environ.get(PROFILE_ENV)
        if not text:
            return None
        data = json.loads(text)
        return cls(backend=data["backend"], experiments=data.get("experiments") or {})

    def public(self) -> dict:
        """What the user may ask for (shown by GET /ink/api/v1/)."""
        return {"backend": self.backend,
                "experiments": {name: {k: e.get(k) for k in ("title", "defaults", "limits", "default_image")}
                                | {"images": sorted(e.get("images") or {})}
                                for name, e in self.experiments.items()}}


def _typed(body) -> dict:
    if not isinstance(body, dict):
        raise RequestError("body", "must be a JSON object")
    for key, value in body.items():
        expected = REQUEST_FIELDS.get(key)
        if expected is None:
            raise RequestError(key, f"unknown field (allowed: {', '.join(REQUEST_FIELDS)})")
        if isinstance(value, bool) or not isinstance(value, expected):
            kind = {list: "a list of strings", str: "a string", int: "an integer",
                    dict: "an object of strings"}[expected]
            raise RequestError(key, f"must be {kind}")
    return body


def _within(field: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise RequestError(field, f"{value} is outside the allowed range {low}-{high}")
    return value


@dataclass(frozen=True)
class CheckedRequest:
    """A request inside the profile: what to submit."""

    name: str
    experiment: str
    argv: tuple[str, ...] | None
    script: str | None
    cpus: int
    memory_mb: int
    gpus: int
    walltime_s: int
    image: str | None
    image_path: str | None
    workdir: str
    env: dict
    routing: dict


def check_request(profile: Profile, body, home: str) -> CheckedRequest:
    """Refuse anything outside the profile (RequestError names the field)."""
    req = _typed(body)
    if ("command" in req) == ("script" in req):
        raise RequestError("command", "give either 'command' (a list of strings) or 'script' (text)")
    argv = script = None
    if "command" in req:
        argv = req["command"]
        if not argv or len(argv) > MAX_ARGS or not all(isinstance(a, str) and "\0" not in a for a in argv):
            raise RequestError("command", f"must be a list of 1 to {MAX_ARGS} strings without NUL")
        if not argv[0]:
            raise RequestError("command", "the program name is empty")
        argv = tuple(argv)
    else:
        script = req["script"]
        if not script.strip() or "\0" in script or len(script.encode()) > MAX_SCRIPT:
            raise RequestError("script", f"must be non-empty text of at most {MAX_SCRIPT} bytes without NUL")

    name = req.get("name", "job")
    if not NAME_RE.match(name):
        raise RequestError("name", f"{name!r} must be 1-32 lowercase letters, digits, '-' or '_', "
                           "starting with a letter")

    if not profile.experiments:
        raise RequestError("experiment", "you are not a member of any experiment on this site")
    exp_name = req.get("experiment", next(iter(profile.experiments)))
    exp = profile.experiments.get(exp_name)
    if exp is None:
        raise RequestError("experiment", f"{exp_name!r} is not one of your experiments "
                           f"({', '.join(profile.experiments)})")
    defaults, limits = exp.get("defaults") or {}, exp.get("limits") or {}

    cpus = _within("cpus", req.get("cpus", defaults.get("cpus") or 1), 1, limits.get("cpus") or 1)
    gpus = _within("gpus", req.get("gpus", defaults.get("gpus") or 0), 0, limits.get("gpus") or 0)
    try:
        memory_mb = parse_memory_mb(req.get("memory", defaults.get("memory") or "1G"))
        walltime_s = parse_walltime_s(req.get("walltime", defaults.get("walltime") or "1:00:00"))
    except JobSpecError as e:
        raise RequestError(e.field, e.reason) from None
    if limits.get("memory") and memory_mb > parse_memory_mb(limits["memory"]):
        raise RequestError("memory", f"{req.get('memory')} is more than your limit {limits['memory']}")
    if limits.get("walltime") and walltime_s > parse_walltime_s(limits["walltime"]):
        raise RequestError("walltime", f"{req.get('walltime')} is more than your limit {limits['walltime']}")

    images = exp.get("images") or {}
    image = req.get("image", exp.get("default_image"))
    if image is not None and image not in images:
        raise RequestError("image", f"{image!r} is not offered by {exp_name!r} "
                           f"(offered: {', '.join(images) or 'none'})")

    workdir = req.get("workdir", home)
    if "\0" in workdir or "\n" in workdir:
        raise RequestError("workdir", "must be a path without NUL or newline")
    workdir = os.path.normpath(os.path.join(home, os.path.expanduser(workdir)))
    if not os.path.isdir(workdir):
        raise RequestError("workdir", f"{workdir} is not a directory")

    env = req.get("env", {})
    if len(env) > 256:
        raise RequestError("env", "at most 256 variables")
    for key, value in env.items():
        if not ENV_KEY_RE.match(key) or key.startswith(("INK_", "JUPYTERHUB_", "SLURM_")):
            raise RequestError("env", f"{key!r} is not an allowed variable name")
        if not isinstance(value, str) or "\0" in value:
            raise RequestError("env", f"{key}: the value must be a string without NUL")

    return CheckedRequest(name=name, experiment=exp_name, argv=argv, script=script, cpus=cpus,
                          memory_mb=memory_mb, gpus=gpus, walltime_s=walltime_s, image=image,
                          image_path=images.get(image) if image else None, workdir=workdir,
                          env=dict(env), routing=dict(exp.get("routing") or {}),
                          )


def make_jobspec(req: CheckedRequest, *, user: str, job_id: str, job_dir: str, command: list[str],
                 base_env: dict, launcher: tuple[str, ...] = ()) -> JobSpec:
    """The JobSpec of a checked request: its argv wrapped so stderr and exit status are kept.

    ``launcher`` goes in front (HTCondor: the loader of the job's environment file). The
    scheduler's job name is ``ink-NAME-ID``: unique, so per-job files of a backend never clash."""
    env = dict(base_env)
    env.update(req.env)
    env.update(INK_JOB_ID=job_id, INK_EXPERIMENT=req.experiment)
    routing = {k: v for k, v in req.routing.items() if k in ("partition", "account", "qos", "requirements")}
    wrapped = ("/bin/sh", "-c", JOB_WRAPPER, "ink-job", os.path.join(job_dir, "stderr"),
               os.path.join(job_dir, "exit_code"), *command)
    try:
        return JobSpec(
            user=user, name=f"{req.name[:19]}-{job_id}", command=(*launcher, *wrapped),
            env=env, workdir=req.workdir, output_path=os.path.join(job_dir, "stdout"),
            cpus=req.cpus, memory_mb=req.memory_mb, gpus=req.gpus, walltime_s=req.walltime_s,
            image=req.image_path, tags={"ink": "workflow", "user": user, "job": job_id}, **routing,
        )
    except JobSpecError as e:
        raise RequestError(e.field, e.reason) from None
