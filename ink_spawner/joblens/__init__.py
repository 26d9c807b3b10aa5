"""Job Lens: what a job uses (CPU, memory, I/O, GPU, network), sampled beside it, without root.

Started on the worker by the job's own wrapper — ``ink-session`` for sessions (a thread), and
``python -m ink_spawner.joblens`` in front of every job-API job — it samples every few seconds
into a private (0600) JSON-lines file in the job's directory, which the user's portal serves
(``/ink/api/v1/jobs/ID/metrics``). Standard library only (the job side imports nothing of the
hub); NVML (``nvidia-ml-py``) is used when it is installed and a GPU is there.

One job per module:

- :mod:`.proctree`: figures of a process tree from ``/proc`` (the dev Slurm: no cgroups);
- :mod:`.cgroup`: figures of the job's own cgroup v2, where it has one;
- :mod:`.gpu`: GPU utilisation and memory through NVML (optional);
- :mod:`.recorder`: the private, size-bounded samples file;
- :mod:`.sampler`: the loop: one sample per interval, CPU as % of one core;
- :mod:`.summary`: reading a samples file back: series, summary, efficiency line;
- :mod:`.__main__`: the launcher that runs a job's command and samples it.
"""

#: seconds between samples unless INK_LENS_INTERVAL says otherwise
DEFAULT_INTERVAL = 5.0
#: most bytes of a samples file before older samples are thinned (INK_LENS_MAX_BYTES)
DEFAULT_MAX_BYTES = 1 << 20
