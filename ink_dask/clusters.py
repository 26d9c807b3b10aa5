"""``ink_dask.cluster(workers=N)``: a dask-jobqueue cluster inside the user's profile.

The request is checked by the one validator before anything is submitted (a ``Refused``
naming the limit otherwise); the cluster is the right dask-jobqueue class for the hub's
backend, configured from the same decision, with its scheduler on TLS (temporary
certificates, so another user on the network cannot send it work), and it refuses to scale
beyond ``dask.max_workers`` afterwards too.
"""

from __future__ import annotations

import os

from ink_spawner.validator import Refused

from . import config


def _capped(base):
    class InkCluster(base):
        """A dask-jobqueue cluster that stays within the session's worker cap."""

        ink_max_workers = 0

        def scale(self, n=None, jobs=0, memory=None, cores=None):
            if n is not None or jobs:
                wanted = jobs or n
                if wanted > self.ink_max_workers:
                    raise Refused("workers", f"{wanted} workers is more than your limit of "
                                  f"{self.ink_max_workers} (dask.max_workers)")
            return super().scale(n=n, jobs=jobs, memory=memory, cores=cores)

        def adapt(self, *args, maximum_jobs=None, maximum=None, **kwargs):
            top = maximum_jobs if maximum_jobs is not None else maximum
            if top is None or top > self.ink_max_workers:
                top = self.ink_max_workers
            return super().adapt(*args, maximum_jobs=top, **kwargs)

    InkCluster.__name__ = f"Ink{base.__name__}"
    return InkCluster


def cluster_kwargs(section: dict) -> dict:
    """dask-jobqueue keyword arguments from a ``jobqueue`` config section (the cluster reads
    its config lazily, so the decision is passed as arguments, not as a temporary config)."""
    renamed = {"name": "job_name"}
    return {renamed.get(k, k.replace("-", "_")): v for k, v in section.items()}


def cluster_class(backend: str):
    import dask_jobqueue

    base = {"slurm": dask_jobqueue.SLURMCluster, "htcondor": dask_jobqueue.HTCondorCluster}[backend]
    return _capped(base)


def cluster(workers: int = 0, *, cores: int | None = None, memory: str | None = None,
            walltime: str | None = None, image: str | None = None, wait: bool = False,
            timeout: float = 300, environ=os.environ, **kwargs):
    """Start a Dask cluster of ``workers`` batch jobs of this session's user and experiment.

    ``cores``, ``memory``, ``walltime``: of each worker (default: the experiment's
    ``dask.worker``); ``image``: one of the experiment's images. More workers than
    ``dask.max_workers`` or resources above the limits raise ``Refused`` before anything is
    submitted. ``wait``: block until all workers have connected."""
    resources = {k: v for k, v in (("cpus", cores), ("memory", memory), ("walltime", walltime),
                                   ("image", image)) if v is not None}
    decision = config.decide(workers=workers, environ=environ, **resources)
    section, cfg = config.jobqueue_section(decision, environ)
    from distributed.security import Security

    os.makedirs(cfg["shared-temp-directory"], mode=0o700, exist_ok=True)
    os.makedirs(cfg["log-directory"], mode=0o700, exist_ok=True)
    cls = cluster_class(section)
    kwargs = {**cluster_kwargs(cfg), **kwargs}
    kwargs.setdefault("security", Security.temporary())
    c = cls(**kwargs)
    c.ink_max_workers = decision.max_workers
    if workers:
        c.scale(jobs=workers)
        if wait:
            from distributed import Client

            with Client(c, timeout=timeout) as client:
                client.wait_for_workers(workers, timeout=timeout)
    return c
