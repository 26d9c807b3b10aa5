"""Dask clusters as batch jobs of an INK session (job side; imports nothing of the hub).

- :func:`cluster` — ``ink_dask.cluster(workers=N)``: the right dask-jobqueue class for the
  hub's backend, checked by the one validator (``dask.max_workers`` and the limits).
- :mod:`ink_dask.config` — the session's Dask config (``jobqueue`` section, dashboard link),
  written by ``ink-session`` at start so that a plain ``SLURMCluster()`` works.
- :mod:`ink_dask.cleanup` — the session's workers end with it.
"""

from __future__ import annotations


def cluster(*args, **kwargs):
    from .clusters import cluster as _cluster

    return _cluster(*args, **kwargs)


__all__ = ["cluster"]
