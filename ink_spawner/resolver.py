"""The default resolver: a one-machine install's profile, checked by the one validator.

ink_hub replaces it with the site catalogue's resolver (experiments, presets, limits). This one
knows the built-in apps and one experiment-less profile whose defaults, limits and routing are
its own traits (``c.DefaultResolver.max_cpus`` ...), which is all a one-machine install needs.
Either way the request is checked by :mod:`ink_spawner.validator`, and a refusal is a
:class:`~jupyterhub.spawner.SpawnException` (HTTP 400) naming the field and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from jupyterhub.spawner import SpawnException
from traitlets import Integer, Unicode, validate
from traitlets.config import LoggingConfigurable

from .jobspec import JobSpecError, parse_memory_mb, parse_walltime_s
from .validator import ExperimentProfile, Profile, Refused, check_session


@dataclass(frozen=True)
class AppInfo:
    """What the spawner needs to know of an app: where the user lands and what it is called."""

    name: str
    title: str
    default_url: str


BUILTIN_APPS = {
    "jupyter": AppInfo("jupyter", "JupyterLab", "/lab"),
}

#: the one experiment of the default profile
DEFAULT_EXPERIMENT = "default"


def refused(field: str, reason: str) -> SpawnException:
    """The HTTP 400 of a spawn outside the profile."""
    return SpawnException(f"{field}: {reason}", reason="not_allowed", status_code=400)


class DefaultResolver(LoggingConfigurable):
    """Resources and routing of sessions on a hub without a site catalogue."""

    default_cpus = Integer(1, help="CPU cores of a session when the request names none.").tag(config=True)
    max_cpus = Integer(8, help="Most CPU cores one session may request.").tag(config=True)
    max_gpus = Integer(0, help="Most GPUs one session may request.").tag(config=True)
    default_memory = Unicode("6G", help="Memory of a session when the request names none.").tag(config=True)
    max_memory = Unicode("32G", help="Most memory one session may request.").tag(config=True)
    default_walltime = Unicode("24:00:00", help="Wall time of a session; the scheduler enforces it.").tag(config=True)
    max_walltime = Unicode("72:00:00", help="Longest wall time one session may request.").tag(config=True)
    partition = Unicode("", help="Scheduler partition/queue for sessions ('' = scheduler default).").tag(config=True)
    account = Unicode("", help="Scheduler account charged for sessions ('' = user default).").tag(config=True)
    qos = Unicode("", help="Scheduler QOS for sessions ('' = default).").tag(config=True)

    @validate("default_memory", "max_memory")
    def _validate_memory(self, proposal):
        try:
            parse_memory_mb(proposal.value, proposal.trait.name)
        except JobSpecError as e:
            raise ValueError(str(e)) from None
        return proposal.value

    @validate("default_walltime", "max_walltime")
    def _validate_walltime(self, proposal):
        try:
            parse_walltime_s(proposal.value, proposal.trait.name)
        except JobSpecError as e:
            raise ValueError(str(e)) from None
        return proposal.value

    def profile(self, backend: str) -> Profile:
        """One experiment offering every app, with these traits as defaults and limits."""
        exp = ExperimentProfile(
            name=DEFAULT_EXPERIMENT, title="Default",
            defaults={"cpus": self.default_cpus, "memory": self.default_memory, "gpus": 0,
                      "walltime": self.default_walltime},
            limits={"cpus": self.max_cpus, "memory": self.max_memory, "gpus": self.max_gpus,
                    "walltime": self.max_walltime},
            routing={k: v for k, v in (("partition", self.partition), ("account", self.account),
                                       ("qos", self.qos)) if v})
        return Profile(backend=backend, experiments={exp.name: exp},
                       site_experiments=frozenset({exp.name}))

    async def __call__(self, spawner, user_options: dict):
        app = spawner.app_info()
        try:
            decision = check_session(self.profile(spawner.backend_name), user_options or {},
                                     app=app.name, app_title=app.title)
        except Refused as e:
            raise refused(e.field, e.reason) from None
        try:
            return await spawner.make_jobspec(app=app, **decision.jobspec_fields())
        except JobSpecError as e:
            raise refused(e.field, e.reason) from None
