"""The site catalogue's schema: experiments, apps, images, presets, limits, routing, overrides.

The catalogue is data, validated here with pydantic so that a bad file fails at hub start with
the key and the reason (:mod:`ink_hub.catalogue.load` adds the file). Python configuration of
classes (JupyterHub, InkSpawner, backends, authenticators) is not part of this model: it lives in
the file's ``hub:`` section and becomes traitlets config.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ink_spawner.jobspec import JobSpecError, parse_memory_mb, parse_walltime_s

NAME = r"^[a-z][a-z0-9_-]{0,31}$"
Name = Annotated[str, Field(pattern=NAME)]
SchedulerWord = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,63}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _memory(value: str | int) -> str | int:
    try:
        parse_memory_mb(value)
    except JobSpecError as e:
        raise ValueError(e.reason) from None
    return value


def _walltime(value: str | int) -> str | int:
    try:
        parse_walltime_s(value)
    except JobSpecError as e:
        raise ValueError(e.reason) from None
    return value


class Resources(Strict):
    """Resource values: defaults of a session, or the most a user may ask for."""

    cpus: int | None = Field(None, ge=1, le=4096)
    memory: str | None = None
    gpus: int | None = Field(None, ge=0, le=64)
    walltime: str | None = None

    _check_memory = field_validator("memory")(lambda cls, v: v if v is None else _memory(v))
    _check_walltime = field_validator("walltime")(lambda cls, v: v if v is None else _walltime(v))

    def merged(self, other: Resources | None) -> Resources:
        """These values, with ``other``'s set values taking precedence."""
        if other is None:
            return self
        data = self.model_dump()
        data.update({k: v for k, v in other.model_dump().items() if v is not None})
        return Resources(**data)


class LoginNode(Strict):
    """A login node EShell can open a password-free SSH session to."""

    title: str
    host: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
    port: int = Field(22, ge=1, le=65535)
    host_key: str | None = Field(None, pattern=r"^(ssh|ecdsa)-[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+$",
                                 description="the node's public host key; without it the first "
                                 "connection trusts what the node presents")


class StorageRoot(Strict):
    """A place the file manager shows besides the home directory (POSIX path or XRootD URL)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,39}$")
    path: str | None = Field(None, pattern=r"^/[^\x00]*$", description="absolute path (e.g. /eos/user, /cvmfs)")
    url: str | None = Field(None, pattern=r"^root://[^\s]+$", description="XRootD URL (root://host//path)")
    read_only: bool = Field(False, description="never written through the file manager")

    @model_validator(mode="after")
    def _one_location(self):
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path or url")
        return self


class WalltimeExtension(Strict):
    """Activity-aware wall time: active sessions get more time before the scheduler ends them."""

    extend_by: str = "4:00:00"
    when_left: str = "0:30:00"
    active_within: str = "1:00:00"
    max_walltime: str = "72:00:00"

    _check = field_validator("extend_by", "when_left", "active_within", "max_walltime")(
        lambda cls, v: _walltime(v))


class Site(Strict):
    name: str = "INK Hub"
    logo: str | None = Field(None, description="path of a logo image on the hub host")
    max_sessions_per_user: int = Field(4, ge=1, le=100)
    walltime_extension: WalltimeExtension | None = None
    login_nodes: dict[Name, LoginNode] = Field(default_factory=dict)
    storage_roots: list[StorageRoot] = Field(default_factory=list, description="places the file "
                                             "manager shows besides home (read_only for /cvmfs etc.)")
    anonymous_shares: bool = Field(False, description="share links may be opened without logging in "
                                   "when their owner asks for it")


class App(Strict):
    title: str
    default_url: str = Field(pattern=r"^/[A-Za-z0-9_./-]*$")
    description: str = ""
    icon: str | None = Field(None, pattern=r"^([a-z][a-z0-9_-]{0,31}|/[^\x00\n]*\.(svg|png))$",
                             description="a built-in icon name (jupyter, vscode, desktop, rootbrowse) "
                             "or the absolute path of an .svg/.png on the hub host")
    backend: Name | None = Field(None, description="run this app on another backend than the "
                                 "hub's default, e.g. a portal server on `local`")
    form: bool = Field(True, description="show the spawn menu first; false for servers that start "
                       "at once with the experiment's defaults (the portal)")
    ssh_certificate: bool = Field(False, description="give the session a short-lived SSH user "
                                  "certificate for the site's login nodes (EShell)")
    idle_timeout: str | None = Field(None, description="the server stops itself after this long "
                                     "with no activity, kernels or terminals (e.g. the portal)")

    jobs: bool = Field(False, description="this server serves the batch job API (the portal): the "
                       "hub passes it the user's batch profile")

    shell_idle_timeout: str | None = Field(None, description="a web shell (EShell) with no input or "
                                           "output for this long is ended (tmux sessions live on)")

    defaults: Resources = Field(Resources(), description="resource defaults of this app's sessions, "
                                "over the experiment's (e.g. more cores for Enode); each is lowered "
                                "to the user's limit when that is smaller")

    _check_idle = field_validator("idle_timeout", "shell_idle_timeout")(
        lambda cls, v: v if v is None else _walltime(v))

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value):
        from ink_spawner.backends import available_backends

        if value is not None and value not in available_backends():
            raise ValueError(f"unknown INK backend {value!r} (installed: {', '.join(sorted(available_backends()))})")
        return value


class Image(Strict):
    title: str
    path: str = Field(pattern=r"^/[^\x00\n]*$", description="Apptainer image (absolute path)")


class Preset(Strict):
    title: str
    cpus: int = Field(ge=1, le=4096)
    memory: str
    gpus: int = Field(0, ge=0, le=64)

    _check_memory = field_validator("memory")(lambda cls, v: _memory(v))


class Kernel(Strict):
    """A Jupyter kernel an experiment offers in its sessions (e.g. its ROOT/Python stack)."""

    display_name: str
    argv: list[str] = Field(min_length=1, description="must pass {connection_file} to the kernel")
    language: str = "python"
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("argv")
    @classmethod
    def _connection_file(cls, argv):
        if not any("{connection_file}" in a for a in argv):
            raise ValueError("argv must contain '{connection_file}'")
        return argv


class Members(Strict):
    """Who belongs to an experiment: any match admits the user."""

    everyone: bool = False
    groups: list[str] = Field(default_factory=list, description="JupyterHub groups")
    unix_groups: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)


class SlurmRouting(Strict):
    partition: SchedulerWord | None = None
    account: SchedulerWord | None = None
    qos: SchedulerWord | None = None


class HTCondorRouting(Strict):
    accounting_group: SchedulerWord | None = None
    requirements: str | None = Field(None, pattern=r"^[^\n\x00]*$",
                                     description="one-line ClassAd expression added to the job")


class Routing(Strict):
    slurm: SlurmRouting = SlurmRouting()
    htcondor: HTCondorRouting = HTCondorRouting()


class Experiment(Strict):
    title: str
    members: Members = Members()
    apps: list[Name]
    images: list[Name] = Field(default_factory=list)
    default_image: Name | None = None
    presets: list[Name] = Field(default_factory=list)
    defaults: Resources = Resources()
    limits: Resources = Resources()
    routing: Routing = Routing()
    kernels: dict[Name, Kernel] = Field(default_factory=dict)
    setup: str | None = Field(None, pattern=r"^/[^\x00\n]*$",
                              description="shell script sourced in the job before the server starts")
    services: list[Name] = Field(default_factory=list, description="service plugins (entry point "
                                 "group ink_hub.services) whose tiles its members see")

    @field_validator("services")
    @classmethod
    def _installed_services(cls, value):
        from ink_hub.service_plugins import available_services

        unknown = [s for s in value if s not in available_services()]
        if unknown:
            raise ValueError(f"service plugin {unknown[0]!r} is not installed (installed: "
                             f"{', '.join(sorted(available_services())) or 'none'})")
        return value

    @model_validator(mode="after")
    def _default_image_is_offered(self):
        if self.default_image and self.default_image not in self.images:
            raise ValueError(f"default_image {self.default_image!r} is not in images")
        if self.images and not self.default_image:
            raise ValueError("default_image is required when images are listed")
        return self


class UserOverride(Strict):
    """A special slot for one user: extra experiments or apps, higher limits."""

    experiments: list[Name] = Field(default_factory=list)
    apps: list[Name] = Field(default_factory=list)
    limits: Resources = Resources()


def app_defaults(defaults: Resources, app: App | None, limits: Resources) -> Resources:
    """``defaults`` (the site's and the experiment's) with the app's over them, each of the
    app's values lowered to ``limits``: an app asking for more than an experiment allows gets
    what it allows, not a refused spawn."""
    if app is None:
        return defaults
    own = {}
    for key, value in app.defaults.model_dump().items():
        limit = getattr(limits, key)
        if value is None:
            continue
        if key == "memory" and limit is not None and parse_memory_mb(value) > parse_memory_mb(limit):
            value = limit
        elif key == "walltime" and limit is not None and parse_walltime_s(value) > parse_walltime_s(limit):
            value = limit
        elif key in ("cpus", "gpus") and limit is not None:
            value = min(value, limit)
        own[key] = value
    return defaults.merged(Resources(**own))


class Catalogue(Strict):
    site: Site = Site()
    defaults: Resources = Resources(cpus=1, memory="6G", gpus=0, walltime="24:00:00")
    limits: Resources = Resources(cpus=8, memory="32G", gpus=0, walltime="72:00:00")
    apps: dict[Name, App]
    images: dict[Name, Image] = Field(default_factory=dict)
    presets: dict[Name, Preset] = Field(default_factory=dict)
    experiments: dict[Name, Experiment] = Field(default_factory=dict)
    overrides: dict[str, UserOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references_exist(self):
        problems = []
        for section in ("defaults", "limits"):
            for key, value in getattr(self, section).model_dump().items():
                if value is None:
                    problems.append(f"{section}.{key}: must be set (null is not a value here)")
        if problems:
            raise ValueError("; ".join(problems))
        for name, exp in self.experiments.items():
            problems += _within_limits(f"experiments.{name}.defaults", self.defaults.merged(exp.defaults),
                                       self.limits.merged(exp.limits))
            for preset in exp.presets:
                if preset in self.presets:
                    p = self.presets[preset]
                    problems += _within_limits(
                        f"experiments.{name}.presets", Resources(cpus=p.cpus, memory=p.memory, gpus=p.gpus),
                        self.limits.merged(exp.limits), label=f"preset {preset!r}")
        for name, exp in self.experiments.items():
            for kind, known in (("apps", self.apps), ("images", self.images), ("presets", self.presets)):
                for ref in getattr(exp, kind):
                    if ref not in known:
                        problems.append(f"experiments.{name}.{kind}: {ref!r} is not defined in {kind}")
        for user, override in self.overrides.items():
            for ref in override.experiments:
                if ref not in self.experiments:
                    problems.append(f"overrides.{user}.experiments: {ref!r} is not an experiment")
            for ref in override.apps:
                if ref not in self.apps:
                    problems.append(f"overrides.{user}.apps: {ref!r} is not an app")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _within_limits(where: str, values: Resources, limits: Resources, label: str = "") -> list[str]:
    """Problems of default or preset values that the limits would refuse at every spawn."""
    problems = []
    prefix = f"{label} " if label else ""
    checks = (("cpus", lambda v: v), ("gpus", lambda v: v), ("memory", parse_memory_mb),
              ("walltime", parse_walltime_s))
    for key, measure in checks:
        value, limit = getattr(values, key), getattr(limits, key)
        if value is not None and limit is not None and measure(value) > measure(limit):
            problems.append(f"{where}: {prefix}{key} {value} is above the limit {limit}")
    return problems


def is_name(value: str) -> bool:
    return bool(re.match(NAME, value))
