"""``ink_dask.cluster(workers=N)``: a dask-jobqueue cluster inside the user's profile.

Every request is decided by the one validator (:func:`ink_spawner.validator.check_dask`,
through :func:`ink_dask.config.decide`) before anything is submitted — the first workers, and
every later ``scale()`` (by ``n``, ``jobs``, ``cores`` or ``memory``) and ``adapt()`` (every
minimum/maximum form) — with the workers the *session* already has counted: the worker jobs of
this session the scheduler lists (every cluster and kernel of the session) and those of the
clusters of this process not submitted yet. Routing and resources (partition, account,
directives, cores, memory, the Python/image command, …) come from the validator's decision only:
a keyword argument that would override them is refused, naming the argument. The cluster is
the right dask-jobqueue class for the hub's backend, on TLS with the session's certificate.
"""

from __future__ import annotations

import math
import os
import weakref

from ink_spawner.validator import Refused

from . import cleanup, config

#: dask-jobqueue keyword arguments the validator decides (or that would switch TLS off):
#: passing one would route or size the workers past the decision
DECIDED = frozenset({
    "queue", "account", "project", "job_extra", "job_extra_directives", "job_directives_skip",
    "header_skip", "submit_command_extra", "cancel_command_extra", "job_cpu", "job_mem",
    "processes", "job_name", "name", "python", "disk", "resource_spec", "walltime", "config_name",
    "security", "protocol", "shared_temp_directory", "worker_extra_args", "extra",
})
_LIVE: "weakref.WeakSet" = weakref.WeakSet()


def refuse_overrides(kwargs: dict) -> None:
    """Refuse keyword arguments that would override the validator's decision."""
    for key in kwargs:
        if key in DECIDED:
            raise Refused(key, f"the argument {key!r} is decided by your experiment's profile, "
                          "not by the caller; ink_dask.cluster takes cores=, memory=, walltime= "
                          "and image= within your limits")


def _capped(base, environ, resources: dict):
    class InkCluster(base):
        """A dask-jobqueue cluster whose every scale and adapt is checked by the validator,
        counting the session's other workers."""

        ink_environ = environ
        ink_resources = resources
        ink_max_workers = 0

        # -- how many worker jobs ------------------------------------------------------
        def _ink_own_job_ids(self) -> set[str]:
            return {str(w.job_id) for w in list(getattr(self, "workers", {}).values())
                    if getattr(w, "job_id", None)}

        def _ink_other_workers(self) -> int:
            """Worker jobs of this session that are not this cluster's: listed by the
            scheduler, plus those of other clusters of this process not submitted yet."""
            s = config.settings(self.ink_environ)
            listed = cleanup.session_workers(s["profile"]["backend"],
                                             config.session_job_id(self.ink_environ))
            own = self._ink_own_job_ids()
            others = set(listed or ()) - own
            pending = 0
            for c in list(_LIVE):
                if c is self or getattr(c, "status", None) is None or c.status.name in ("closing", "closed"):
                    continue
                ids = c._ink_own_job_ids()
                others |= ids
                pending += max(0, len(c.worker_spec) - len(ids))
            return len(others) + pending

        def _ink_check(self, jobs: int) -> int:
            """Raise the validator's Refused unless ``jobs`` worker jobs of this cluster fit
            beside the session's others; return how many would fit."""
            decision = config.decide(workers=jobs, running_workers=self._ink_other_workers(),
                                     environ=self.ink_environ, **self.ink_resources)
            self.ink_max_workers = decision.max_workers
            return decision.max_workers

        def _ink_jobs_for(self, n=None, jobs=0, memory=None, cores=None) -> int:
            """The number of jobs dask-jobqueue would scale to, every form counted."""
            from dask.utils import parse_bytes

            target = jobs or 0
            if n is not None:
                target = max(target, math.ceil(n / self._dummy_job.worker_processes))
            if memory is not None:
                target = max(target, math.ceil(parse_bytes(memory) / self._memory_per_worker()))
            if cores is not None:
                target = max(target, math.ceil(cores / self._threads_per_worker()))
            return target

        def scale(self, n=None, jobs=0, memory=None, cores=None):
            target = self._ink_jobs_for(n, jobs, memory, cores)
            if target > len(self.worker_spec):  # growing: a new decision
                self._ink_check(target)
            return super().scale(n=n, jobs=jobs, memory=memory, cores=cores)

        def adapt(self, *args, Adaptive=None, **kwargs):
            from distributed.deploy.adaptive import Adaptive as DaskAdaptive

            cluster = self
            per_job = self._dummy_job.worker_processes

            def ink_adaptive(owner, minimum=0, maximum=math.inf, **kw):
                # dask-jobqueue and SpecCluster turn every form (jobs, cores, memory) into
                # minimum/maximum workers before this: check the minimum, bound the maximum
                cluster._ink_check(math.ceil((minimum or 0) / per_job))
                room = max(cluster.ink_max_workers - cluster._ink_other_workers(), 0)
                return (Adaptive or DaskAdaptive)(owner, minimum=minimum,
                                                  maximum=min(maximum, room * per_job), **kw)

            return super().adapt(*args, Adaptive=ink_adaptive, **kwargs)

    InkCluster.__name__ = f"Ink{base.__name__}"
    return InkCluster


def cluster_kwargs(section: dict) -> dict:
    """dask-jobqueue keyword arguments from a ``jobqueue`` config section (the cluster reads
    its config lazily, so the decision is passed as arguments, not as a temporary config)."""
    renamed = {"name": "job_name"}
    return {renamed.get(k, k.replace("-", "_")): v for k, v in section.items()}


def cluster_class(backend: str, environ=os.environ, resources: dict | None = None):
    import dask_jobqueue

    base = {"slurm": dask_jobqueue.SLURMCluster, "htcondor": dask_jobqueue.HTCondorCluster}[backend]
    return _capped(base, environ, dict(resources or {}))


def security(certs: tuple[str, str]):
    """A Dask ``Security`` of the session's certificate for every role, encryption required."""
    from distributed.security import Security

    cert, key = certs
    return Security(require_encryption=True, tls_ca_file=cert, tls_client_cert=cert,
                    tls_client_key=key, tls_scheduler_cert=cert, tls_scheduler_key=key,
                    tls_worker_cert=cert, tls_worker_key=key)


def cluster(workers: int = 0, *, cores: int | None = None, memory: str | None = None,
            walltime: str | None = None, image: str | None = None, wait: bool = False,
            timeout: float = 300, environ=os.environ, **kwargs):
    """Start a Dask cluster of ``workers`` batch jobs of this session's user and experiment.

    ``cores``, ``memory``, ``walltime``: of each worker (default: the experiment's
    ``dask.worker``); ``image``: one of the experiment's images. More workers than
    ``dask.max_workers`` (counting the session's other workers), resources above the limits,
    or an argument that overrides routing or resources raise ``Refused`` before anything is
    submitted. Other keyword arguments go to the dask-jobqueue class. ``wait``: block until
    all workers have connected."""
    refuse_overrides(kwargs)
    resources = {k: v for k, v in (("cpus", cores), ("memory", memory), ("walltime", walltime),
                                   ("image", image)) if v is not None}
    decision = config.decide(workers=0, environ=environ, **resources)
    section, cfg = config.jobqueue_section(decision, environ)
    os.makedirs(cfg["log-directory"], mode=0o700, exist_ok=True)
    cls = cluster_class(section, environ, resources)
    options = cluster_kwargs(cfg)
    options.pop("shared_temp_directory", None)  # the certificate is already in files
    # the TLS arguments of the workers come from ``security`` (not again from the session
    # config's worker-extra-args, which serve a plain SLURMCluster())
    options["worker_extra_args"] = []
    kwargs = {**kwargs, **options,
              "scheduler_options": {**kwargs.get("scheduler_options", {}), **options["scheduler_options"]},
              "security": security(config.certificate(environ))}
    c = cls(**kwargs)
    c.ink_max_workers = decision.max_workers
    _LIVE.add(c)
    if workers:
        c.scale(jobs=workers)
        if wait:
            from distributed import Client

            with Client(c, timeout=timeout) as client:
                client.wait_for_workers(workers, timeout=timeout)
    return c
