"""ink_spawner: INK sessions as batch jobs.

Hub side: :class:`InkSpawner`, the typed :class:`~ink_spawner.jobspec.JobSpec`, the backends
(``local``, ``slurm``; entry point group ``ink_spawner.backends``) and their shared status cache.
Job side: the ``ink-session`` wrapper (:mod:`ink_spawner.session`), which imports nothing of the
hub. Attributes are loaded lazily so that the job side stays light.
"""

__all__ = ["InkSpawner", "JobSpec"]


def __getattr__(name):
    if name == "InkSpawner":
        from .spawner import InkSpawner

        return InkSpawner
    if name == "JobSpec":
        from .jobspec import JobSpec

        return JobSpec
    raise AttributeError(name)
