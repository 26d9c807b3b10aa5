"""The one validator: what a job may be, for interactive sessions and batch jobs alike.

Every piece of work INK submits — a session from the spawn menu or the REST API, a job of the
workflow API, the Jobs page, an MCP tool, a Dask worker — is checked here, against the user's
:class:`Profile`, before anything reaches a scheduler. A refusal is a :class:`Refused` naming
the field and the reason (HTTP 400 for the caller); nothing is submitted then.

Who decides what:

- the site catalogue (``ink_hub.catalogue``) decides what a user is *allowed*: it builds the
  user's :class:`Profile` (their experiments, apps, images, defaults, limits with overrides,
  the scheduler routing of the backend, the session cap). Without a catalogue the spawner's
  :class:`~ink_spawner.resolver.DefaultResolver` builds a one-experiment profile.
- this module decides whether a *request* fits that profile, with one set of rules (field
  types, ranges, limits, images, apps, routing). No other module re-checks them.
- :class:`~ink_spawner.jobspec.JobSpec` checks the *shape* of what is submitted (user names,
  absolute paths, scheduler words) whoever built it.

The profile travels as JSON (:meth:`Profile.to_json`): the hub hands it to the user's portal
server (``INK_WORKFLOW``), where the job API calls :func:`check_job` with it. Standard library
and :mod:`ink_spawner.jobspec` only, so that the job side can import it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .jobspec import ENV_KEY_RE, NAME_RE, JobSpecError, parse_memory_mb, parse_walltime_s

#: environment variable of the portal session holding the user's profile (JSON)
PROFILE_ENV = "INK_WORKFLOW"

#: what a session request (user_options) may contain, and the JSON type of each
SESSION_FIELDS: dict[str, type] = {"experiment": str, "image": str, "cpus": int, "memory": str,
                                   "gpus": int, "walltime": str}
#: what a batch job request may contain: the session's fields and the job's own
JOB_FIELDS: dict[str, type] = {"command": list, "script": str, "name": str, **SESSION_FIELDS,
                               "workdir": str, "env": dict}

MAX_SCRIPT = 1 << 20  # bytes of a job script
MAX_ARGS = 4096  # arguments of a job command
MAX_ENV = 256  # variables a job may set
#: variables a job may not set: INK's, the hub's and the scheduler's own
RESERVED_ENV_PREFIXES = ("INK_", "JUPYTERHUB_", "SLURM_")
#: the routing keys a profile may carry, per backend (the catalogue fills them in)
ROUTING_KEYS = ("partition", "account", "qos", "requirements")

_KINDS = {list: "a list of strings", str: "a string", int: "an integer", dict: "an object of strings"}


class Refused(ValueError):
    """A request is outside the user's profile or malformed; ``field`` names what (HTTP 400)."""

    def __init__(self, field_name: str, reason: str):
        self.field, self.reason = field_name, reason
        super().__init__(f"{field_name}: {reason}")


# ---- the profile: what one user may run ---------------------------------------------------

@dataclass(frozen=True)
class ExperimentProfile:
    """One experiment as one user may use it (defaults and limits already merged)."""

    name: str
    title: str = ""
    apps: tuple[str, ...] | None = None  # the apps it offers; None: every app of the hub
    defaults: Mapping = field(default_factory=dict)  # cpus, memory, gpus, walltime
    limits: Mapping = field(default_factory=dict)  # the most a request may ask for
    images: Mapping[str, str] = field(default_factory=dict)  # image name -> path
    default_image: str | None = None
    routing: Mapping[str, str] = field(default_factory=dict)  # scheduler routing of the backend
    #: an app's own defaults (e.g. more cores for Enode), already within the limits: a session
    #: of that app starts from these instead of ``defaults``
    app_defaults: Mapping[str, Mapping] = field(default_factory=dict)

    def defaults_for(self, app: str | None) -> Mapping:
        return self.app_defaults.get(app, self.defaults) if app is not None else self.defaults

    def to_dict(self) -> dict:
        return {"title": self.title, "apps": list(self.apps) if self.apps is not None else None,
                "defaults": dict(self.defaults), "limits": dict(self.limits),
                "images": dict(self.images), "default_image": self.default_image,
                "routing": dict(self.routing),
                "app_defaults": {a: dict(d) for a, d in self.app_defaults.items()}}

    @classmethod
    def from_dict(cls, name: str, data: Mapping) -> ExperimentProfile:
        apps = data.get("apps")
        return cls(name=name, title=data.get("title") or "",
                   apps=tuple(apps) if apps is not None else None,
                   defaults=dict(data.get("defaults") or {}), limits=dict(data.get("limits") or {}),
                   images=dict(data.get("images") or {}), default_image=data.get("default_image"),
                   routing={k: v for k, v in (data.get("routing") or {}).items()
                            if k in ROUTING_KEYS and v},
                   app_defaults={a: dict(d) for a, d in (data.get("app_defaults") or {}).items()})


@dataclass(frozen=True)
class Profile:
    """Everything one user may run on one backend: the input of every check."""

    backend: str
    experiments: Mapping[str, ExperimentProfile]  # the user's, in catalogue order
    site_experiments: frozenset[str] = frozenset()  # all of the site's (to tell unknown from not yours)
    max_sessions: int | None = None  # interactive sessions at once; None: no cap

    def to_json(self) -> str:
        return json.dumps({"backend": self.backend,
                           "experiments": {n: e.to_dict() for n, e in self.experiments.items()},
                           "site_experiments": sorted(self.site_experiments),
                           "max_sessions": self.max_sessions}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Profile:
        data = json.loads(text)
        return cls(backend=data["backend"],
                   experiments={n: ExperimentProfile.from_dict(n, e)
                                for n, e in (data.get("experiments") or {}).items()},
                   site_experiments=frozenset(data.get("site_experiments") or ()),
                   max_sessions=data.get("max_sessions"))

    @classmethod
    def from_env(cls, environ: Mapping = os.environ) -> Profile | None:
        """The profile the hub passed to this server, or None (not started by an INK hub)."""
        text = environ.get(PROFILE_ENV)
        return cls.from_json(text) if text else None

    def public(self) -> dict:
        """What the user may ask for, as the job API shows it (no routing, no image paths)."""
        return {"backend": self.backend,
                "experiments": {name: {"title": e.title, "defaults": dict(e.defaults),
                                       "limits": dict(e.limits), "default_image": e.default_image,
                                       "images": sorted(e.images)}
                                for name, e in self.experiments.items()}}


# ---- what a check returns -------------------------------------------------------------------

@dataclass(frozen=True)
class Resolved:
    """A request inside the profile: the experiment, image, resources and routing to submit."""

    experiment: str
    image: str | None  # the image's catalogue name
    image_path: str | None
    cpus: int
    memory_mb: int
    gpus: int
    walltime_s: int
    max_walltime_s: int | None  # the most wall time the job may ever get (its limit)
    routing: Mapping[str, str]

    def jobspec_fields(self) -> dict:
        """The JobSpec keyword arguments this decision fills in."""
        return {"cpus": self.cpus, "memory_mb": self.memory_mb, "gpus": self.gpus,
                "walltime_s": self.walltime_s, "max_walltime_s": self.max_walltime_s,
                "image": self.image_path, **{k: v for k, v in self.routing.items() if k in ROUTING_KEYS}}


@dataclass(frozen=True)
class JobRequest(Resolved):
    """A batch job request inside the profile: the decision plus the job's own fields."""

    name: str = "job"
    argv: tuple[str, ...] | None = None
    script: str | None = None
    workdir: str = "/"
    env: Mapping[str, str] = field(default_factory=dict)


# ---- the checks -----------------------------------------------------------------------------

def check_session(profile: Profile, options, *, app: str, app_title: str | None = None,
                  other_sessions: int = 0) -> Resolved:
    """Check one session request (user_options) for ``app`` against the profile.

    ``other_sessions``: how many other sessions the user has running (the session cap)."""
    options = _typed(options, SESSION_FIELDS, "user_options")
    title = app_title or app
    exp = _experiment(profile, options.get("experiment"), app=app, app_title=title)
    if profile.max_sessions is not None and other_sessions >= profile.max_sessions:
        raise Refused("sessions", f"you already have {other_sessions} sessions running "
                      f"(limit {profile.max_sessions}); stop one first")
    return _resolve(exp, options, app=app)


def check_job(profile: Profile, body, *, home: str) -> JobRequest:
    """Check one batch job request against the profile.

    Runs as the user (the portal server): ``workdir`` is resolved against ``home`` and must be
    a directory the user can see (a stat: call it off the event loop)."""
    req = _typed(body, JOB_FIELDS, "body")
    if ("command" in req) == ("script" in req):
        raise Refused("command", "give either 'command' (a list of strings) or 'script' (text)")
    argv = script = None
    if "command" in req:
        argv = req["command"]
        if not argv or len(argv) > MAX_ARGS or not all(isinstance(a, str) and "\0" not in a for a in argv):
            raise Refused("command", f"must be a list of 1 to {MAX_ARGS} strings without NUL")
        if not argv[0]:
            raise Refused("command", "the program name is empty")
        argv = tuple(argv)
    else:
        script = req["script"]
        if not script.strip() or "\0" in script or len(script.encode()) > MAX_SCRIPT:
            raise Refused("script", f"must be non-empty text of at most {MAX_SCRIPT} bytes without NUL")
    name = req.get("name", "job")
    if not NAME_RE.match(name):
        raise Refused("name", f"{name!r} must be 1-32 lowercase letters, digits, '-' or '_', "
                      "starting with a letter")
    exp = _experiment(profile, req.get("experiment"))
    resolved = _resolve(exp, req)
    workdir = req.get("workdir", home)
    if "\0" in workdir or "\n" in workdir:
        raise Refused("workdir", "must be a path without NUL or newline")
    workdir = os.path.normpath(os.path.join(home, os.path.expanduser(workdir)))
    if not os.path.isdir(workdir):
        raise Refused("workdir", f"{workdir} is not a directory")
    env = req.get("env", {})
    if len(env) > MAX_ENV:
        raise Refused("env", f"at most {MAX_ENV} variables")
    for key, value in env.items():
        if not ENV_KEY_RE.match(key) or key.startswith(RESERVED_ENV_PREFIXES):
            raise Refused("env", f"{key!r} is not an allowed variable name")
        if not isinstance(value, str) or "\0" in value:
            raise Refused("env", f"{key}: the value must be a string without NUL")
    return JobRequest(**vars(resolved), name=name, argv=argv, script=script, workdir=workdir,
                      env=dict(env))


# ---- the rules ------------------------------------------------------------------------------

def _typed(request, fields: dict[str, type], what: str) -> dict:
    """Every key known, every value of its JSON type (bool is not an integer)."""
    if not isinstance(request, dict):
        raise Refused(what, "must be a JSON object")
    for key, value in request.items():
        expected = fields.get(key)
        if expected is None:
            raise Refused(key, f"unknown field (allowed: {', '.join(fields)})")
        if isinstance(value, bool) or not isinstance(value, expected):
            raise Refused(key, f"must be {_KINDS[expected]}")
        if key in SESSION_FIELDS and expected is str and (len(value) > 64 or not value.isprintable()):
            raise Refused(key, "must be a short printable string")
    return request


def _experiment(profile: Profile, name: str | None, app: str | None = None,
                app_title: str | None = None) -> ExperimentProfile:
    """The experiment a request runs in: the one it names, or the first of the user's that
    offers the app."""
    if not profile.experiments:
        raise Refused("experiment", "you are not a member of any experiment on this site")
    yours = ", ".join(profile.experiments)
    if name is None:
        offering = [e for e in profile.experiments.values() if app is None or _offers(e, app)]
        if not offering:
            raise Refused("app", f"{app_title} is not available in your experiments")
        return offering[0]
    exp = profile.experiments.get(name)
    if exp is None:
        if name in profile.site_experiments:
            raise Refused("experiment", f"you are not a member of {name!r} (yours: {yours})")
        raise Refused("experiment", f"unknown experiment {name!r} (yours: {yours})")
    if app is not None and not _offers(exp, app):
        raise Refused("app", f"{app_title} is not available in experiment {name!r}")
    return exp


def _offers(exp: ExperimentProfile, app: str) -> bool:
    return exp.apps is None or app in exp.apps


def _resolve(exp: ExperimentProfile, request: dict, app: str | None = None) -> Resolved:
    """Image, resources within the limits, and the experiment's routing."""
    image = request.get("image", exp.default_image)
    if image is not None and image not in exp.images:
        offered = ", ".join(exp.images) or "none"
        raise Refused("image", f"{image!r} is not offered by {exp.name!r} (offered: {offered})")
    defaults, limits = exp.defaults_for(app), exp.limits
    cpus = _within("cpus", request.get("cpus", defaults.get("cpus") or 1), 1, limits.get("cpus") or 1)
    gpus = _within("gpus", request.get("gpus", defaults.get("gpus") or 0), 0, limits.get("gpus") or 0)
    memory = request.get("memory", defaults.get("memory") or "1G")
    walltime = request.get("walltime", defaults.get("walltime") or "1:00:00")
    try:
        memory_mb = parse_memory_mb(memory)
        walltime_s = parse_walltime_s(walltime)
        max_memory_mb = parse_memory_mb(limits["memory"]) if limits.get("memory") else None
        max_walltime_s = parse_walltime_s(limits["walltime"]) if limits.get("walltime") else None
    except JobSpecError as e:
        raise Refused(e.field, e.reason) from None
    if max_memory_mb is not None and memory_mb > max_memory_mb:
        raise Refused("memory", f"{memory} is more than your limit {limits['memory']}")
    if max_walltime_s is not None and walltime_s > max_walltime_s:
        raise Refused("walltime", f"{walltime} is more than your limit {limits['walltime']}")
    return Resolved(experiment=exp.name, image=image,
                    image_path=exp.images[image] if image is not None else None,
                    cpus=cpus, memory_mb=memory_mb, gpus=gpus, walltime_s=walltime_s,
                    max_walltime_s=max_walltime_s, routing=dict(exp.routing))


def _within(field_name: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise Refused(field_name, f"{value} is outside the allowed range {low}-{high}")
    return value
