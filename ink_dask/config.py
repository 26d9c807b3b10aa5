"""The session's Dask configuration, from the profile the hub passed in ``$INK_DASK``.

The hub (``CatalogueResolver.session_env``) gives every session the user's profile on the
hub's default backend, the session's experiment and image, and the backend's container
command. Here the one validator (:func:`ink_spawner.validator.check_dask`) decides a worker's
resources and routing, and this module turns that decision into Dask's own configuration: a
``jobqueue`` section (``slurm`` or ``htcondor``), so that a plain ``SLURMCluster()`` submits
workers of the right partition, account, QOS, image, cores and memory, and the dashboard link
through the hub's proxy. Every Dask process of the session talks TLS with the session's own
certificate (:mod:`ink_dask.tls`), kept with this config in the session's directory on the
shared home (:func:`session_dir`). Job side: standard library and ``ink_spawner.validator``
only (``ink_dask.tls`` imports ``cryptography`` when it makes the certificate).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping

from ink_spawner.jobspec import dask_worker_job_name
from ink_spawner.validator import DaskRequest, Profile, check_dask

ENV = "INK_DASK"
#: Dask's own variable: a directory of config files read after ~/.config/dask
DASK_CONFIG_ENV = "DASK_CONFIG"
CONFIG_FILE = "ink-session.yaml"
#: dask-jobqueue's config section per INK backend
SECTIONS = {"slurm": "slurm", "htcondor": "htcondor"}


class NotInSession(RuntimeError):
    """This process was not started in an INK session (no ``$INK_DASK``)."""


def settings(environ: Mapping = os.environ) -> dict:
    text = environ.get(ENV)
    if not text:
        raise NotInSession("not in an INK session: $INK_DASK is not set (the hub sets it)")
    return json.loads(text)


def profile(environ: Mapping = os.environ) -> Profile:
    return Profile.from_json(json.dumps(settings(environ)["profile"]))


def session_job_id(environ: Mapping = os.environ) -> str:
    """The scheduler id of this session's own job: the tag of its workers."""
    if environ.get("SLURM_JOB_ID"):
        return environ["SLURM_JOB_ID"]
    ad = environ.get("_CONDOR_JOB_AD")
    if ad and os.path.exists(ad):
        values = {}
        with open(ad) as f:
            for line in f:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
        if values.get("ClusterId", "").isdigit():
            return f"{values['ClusterId']}.{values.get('ProcId', '0')}"
    return environ.get("INK_SESSION_JOB_ID") or f"pid{os.getpid()}"


worker_job_name = dask_worker_job_name


def decide(workers: int = 0, running_workers: int = 0, environ: Mapping = os.environ,
           **resources) -> DaskRequest:
    """The validator's decision for ``workers`` workers of ``resources`` (cpus, memory,
    walltime, image) in the session's experiment; raises ``Refused`` naming the limit."""
    s = settings(environ)
    request = {"workers": workers, "experiment": s["experiment"], **resources}
    if s.get("image") and "image" not in resources:
        request["image"] = s["image"]
    return check_dask(profile(environ), request, running_workers=running_workers)


def jobqueue_section(decision: DaskRequest, environ: Mapping = os.environ,
                     python: str | None = None) -> tuple[str, dict]:
    """(section name, dask-jobqueue settings) of one worker of this decision."""
    s = settings(environ)
    backend = s["profile"]["backend"]
    section = SECTIONS.get(backend)
    if section is None:
        raise NotInSession(f"Dask workers need a batch backend; this hub's is {backend!r}")
    job_id = session_job_id(environ)
    python = python or sys.executable
    if decision.image_path:
        python = shlex.join([*s.get("container_command", ["apptainer", "exec"]),
                             decision.image_path, python])
    home = environ.get("HOME") or os.path.expanduser("~")
    tags = f"ink=dask,session={job_id},hub={s.get('hub', 'ink')}"
    cfg = {
        "name": worker_job_name(job_id),
        "cores": decision.cpus,
        "processes": 1,
        "memory": f"{decision.memory_mb}MiB",
        "walltime": _hms(decision.walltime_s),
        "python": python,
        "log-directory": os.path.join(home, ".ink", "logs", "dask"),
        "shared-temp-directory": os.path.join(home, ".ink", "dask"),
        # the scheduler runs in the kernel; its dashboard only on loopback, reached through
        # the session's own jupyter-server-proxy (hub OAuth), never on an open port
        "scheduler-options": {"dashboard_address": "127.0.0.1:0"},
    }
    routing = decision.routing
    if section == "slurm":
        cfg["queue"] = routing.get("partition")
        cfg["account"] = routing.get("account")
        directives = [f"--comment={tags}"]
        if routing.get("qos"):
            directives.append(f"--qos={routing['qos']}")
        cfg["job-extra-directives"] = directives
    else:
        directives = {"+InkDaskSession": f'"{job_id}"', "+InkDask": "true",
                      "JobBatchName": worker_job_name(job_id)}
        if routing.get("account"):
            directives["accounting_group"] = routing["account"]
        if routing.get("requirements"):
            directives["requirements"] = routing["requirements"]
        # HTCondor has no wall time of its own: the worker is removed when it has run too long
        directives["periodic_remove"] = (f"JobStatus == 2 && (time() - EnteredCurrentStatus) > "
                                         f"{decision.walltime_s}")
        cfg["job-extra-directives"] = directives
        cfg["disk"] = "1GiB"
        del cfg["walltime"]
    return section, {k: v for k, v in cfg.items() if v is not None}


def session_dir(environ: Mapping = os.environ) -> str:
    """The session's private Dask directory on the shared home, ``~/.ink/dask/session-ID``
    (0700): its config and TLS certificate, readable by its workers on any node."""
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".ink", "dask", f"session-{session_job_id(environ)}")


def certificate(environ: Mapping = os.environ, create: bool = True) -> tuple[str, str] | None:
    """(cert, key) of the session's Dask certificate; made now if missing and ``create``."""
    from . import tls

    directory = session_dir(environ)
    cert, key = os.path.join(directory, tls.CERT_FILE), os.path.join(directory, tls.KEY_FILE)
    if os.path.exists(cert) and os.path.exists(key):
        return cert, key
    return tls.write_certificate(directory) if create else None


def dask_config(environ: Mapping = os.environ, certs: tuple[str, str] | None = None) -> dict:
    """Dask's configuration for this session: the workers' ``jobqueue`` section with the
    experiment's worker defaults, the dashboard link through the hub's proxy, and TLS with
    the session's certificate ``certs`` for every role (no ``jobqueue`` section without it:
    a scheduler on an open port without encryption is never configured)."""
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    config: dict = {"distributed": {"dashboard": {"link": prefix.rstrip("/") + "/proxy/{port}/status"}}}
    if certs:
        from . import tls

        config["distributed"]["comm"] = tls.tls_config(*certs)
    try:
        decision = decide(workers=0, environ=environ)
        if decision.max_workers == 0:
            raise NotInSession(f"Dask workers are not enabled for experiment {decision.experiment!r}")
        section, cfg = jobqueue_section(decision, environ)
        if not certs:
            raise NotInSession("no TLS certificate for the session's Dask scheduler")
    except (NotInSession, ValueError) as e:  # Dask off for this experiment, or a local hub
        config["ink"] = {"dask": {"unavailable": str(e)}}
        return config
    from . import tls

    # a plain SLURMCluster(): its scheduler listens on TLS, its workers are told to use it
    cfg["scheduler-options"] = {**cfg["scheduler-options"], "protocol": "tls://"}
    cfg["worker-extra-args"] = tls.worker_args(*certs)
    config["jobqueue"] = {section: cfg}
    config["ink"] = {"dask": {"max_workers": decision.max_workers, "backend": section}}
    return config


def write_session_config(environ: Mapping = os.environ) -> str | None:
    """Write the session's certificate and Dask config into :func:`session_dir` and return
    it, for ``$DASK_CONFIG``. JSON is YAML: no YAML writer needed here."""
    if not environ.get(ENV):
        return None
    directory = session_dir(environ)
    try:
        certs = certificate(environ)
    except Exception as e:  # no cryptography: Dask without jobqueue rather than without TLS
        print(f"ink-session: no Dask certificate ({e}): Dask clusters are off", flush=True)
        certs = None
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, CONFIG_FILE)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dask_config(environ, certs), f, indent=1)
    os.replace(path + ".tmp", path)
    return directory


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
