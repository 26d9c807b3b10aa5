"""Prometheus metrics of sessions and schedulers, in the hub's own ``/hub/metrics``.

JupyterHub serves prometheus_client's default ``REGISTRY`` at ``/hub/metrics`` (scope
``read:metrics``), so what is registered here appears there with no endpoint of our own. The
spawner and the backends' shared caches record into these objects; nothing here asks a
scheduler. Hub-only figures (Kerberos renewals) live in :mod:`ink_hub.metrics`, because this
package never imports the hub side.

Why sessions are a collector and not a Gauge moved up and down: a restarted hub re-attaches to
running jobs through ``load_state`` without a ``start()``, and a missed decrement would leave
a ghost session for ever. Counting the live spawners at scrape time is always right.

The same module keeps the last day of queue waits (time, app, experiment, seconds) in memory,
for the hub's statistics page: the page reads what the metrics saw, it does not sample again.
"""

from __future__ import annotations

import time
import weakref
from collections import Counter, deque

from prometheus_client import REGISTRY, Counter as PromCounter, Histogram
from prometheus_client.core import GaugeMetricFamily

#: spawn phases: submit (the scheduler accepts the job), queue (accepted → running),
#: start (running → the app answers and reports its port)
PHASES = ("submit", "queue", "start")

# seconds a spawn phase or a queue wait can plausibly take: fractions of a second for a local
# process, minutes to hours in a busy batch queue
_PHASE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)
_QUERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

SPAWN_PHASE = Histogram(
    "ink_spawn_phase_seconds",
    "Duration of each phase of a session's spawn: submit, queue (submitted until running), "
    "start (running until the app answers)",
    ["backend", "app", "phase"], buckets=_PHASE_BUCKETS)

QUEUE_WAIT = Histogram(
    "ink_queue_wait_seconds",
    "Seconds a session's job waited in the queue, by partition (Slurm) or accounting group",
    ["backend", "queue"], buckets=_PHASE_BUCKETS)

SCHEDULER_QUERY = Histogram(
    "ink_scheduler_query_seconds",
    "Duration of the backend's shared scheduler queries (kind: status = the one status query "
    "per interval for all sessions, queue = the platform overview's queue sample)",
    ["backend", "kind"], buckets=_QUERY_BUCKETS)

SCHEDULER_ERRORS = PromCounter(
    "ink_scheduler_query_errors",
    "Scheduler queries that failed (the last known statuses were kept)",
    ["backend", "kind"])

#: the live spawners of this process (a spawner adds itself when it has a job)
_spawners: weakref.WeakSet = weakref.WeakSet()

#: (time, backend, app, experiment, queue, seconds) of the last day's queue waits
RECENT_WAITS: deque = deque(maxlen=20000)
WAITS_KEPT_S = 24 * 3600


def track(spawner) -> None:
    """Count this spawner's session while it has a job (idempotent)."""
    _spawners.add(spawner)


def running_sessions() -> list[dict]:
    """Labels of every running INK session in this hub: backend, app, experiment, os (image)."""
    rows = []
    for spawner in list(_spawners):
        if not getattr(spawner, "job_id", "") or getattr(spawner, "_port", None) is None \
                or not getattr(spawner, "ready", True):
            continue
        options = getattr(spawner, "user_options", None) or {}
        rows.append({"backend": spawner.backend_name, "app": spawner.name or "",
                     "experiment": str(options.get("experiment") or ""),
                     "os": str(options.get("image") or ""), "spawner": spawner})
    return rows


def sessions_by(*keys: str, backend: str | None = None) -> Counter:
    """Running sessions counted by the given labels, e.g. ``sessions_by("app", "experiment")``."""
    return Counter(tuple(r[k] for k in keys) for r in running_sessions()
                   if backend is None or r["backend"] == backend)


class SessionCollector:
    """``ink_sessions{backend,app,experiment,os}``: running sessions, counted at scrape time."""

    def collect(self):
        family = GaugeMetricFamily("ink_sessions", "Running INK sessions by app, experiment and OS image",
                                   labels=["backend", "app", "experiment", "os"])
        for labels, n in sorted(sessions_by("backend", "app", "experiment", "os").items()):
            family.add_metric(list(labels), n)
        yield family

    def describe(self):  # no samples at registration (spawners do not exist yet)
        return [GaugeMetricFamily("ink_sessions", "", labels=["backend", "app", "experiment", "os"])]


_collector = SessionCollector()
try:
    REGISTRY.register(_collector)
except ValueError:  # registered already (module reloaded in tests)
    pass


def observe_phase(backend: str, app: str, phase: str, seconds: float) -> None:
    SPAWN_PHASE.labels(backend=backend, app=app, phase=phase).observe(max(0.0, seconds))


def observe_queue_wait(backend: str, queue: str, app: str, experiment: str, seconds: float) -> None:
    """One session's time in the queue: a metric by queue, and a row for the statistics page."""
    seconds = max(0.0, seconds)
    QUEUE_WAIT.labels(backend=backend, queue=queue or "default").observe(seconds)
    now = time.time()
    RECENT_WAITS.append((now, backend, app, experiment, queue or "default", seconds))
    while RECENT_WAITS and RECENT_WAITS[0][0] < now - WAITS_KEPT_S:
        RECENT_WAITS.popleft()


class timed_query:
    """``with timed_query(backend, "status"):`` — the query's duration, and an error if it raises."""

    def __init__(self, backend: str, kind: str):
        self.backend, self.kind = backend, kind

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, kind, value, tb):
        SCHEDULER_QUERY.labels(backend=self.backend, kind=self.kind).observe(time.monotonic() - self.t0)
        if kind is not None and not issubclass(kind, (GeneratorExit, KeyboardInterrupt)) \
                and kind.__name__ != "CancelledError":
            SCHEDULER_ERRORS.labels(backend=self.backend, kind=self.kind).inc()
        return False
