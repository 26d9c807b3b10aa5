"""The typed description of one session job.

A :class:`JobSpec` is the only thing a backend receives from the spawner. Every field is checked
here, once, so that backends can turn it into scheduler arguments (argv lists) without
re-validating user-influenced values, and so that a bad value is rejected before anything is
submitted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# POSIX portable user names (plus the dot many sites use); never starts with '-'.
USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
# JupyterHub server names used as INK app names.
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Scheduler words: partitions, accounts, QOS, node features.
WORD_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,63}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MEMORY_RE = re.compile(r"^\s*([0-9]{1,9}(?:\.[0-9]{1,6})?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_WALLTIME_RE = re.compile(r"^(?:([0-9]{1,3})-)?([0-9]{1,3}):([0-9]{2})(?::([0-9]{2}))?$")


class JobSpecError(ValueError):
    """A field of a job spec is invalid; ``field`` names it for the user-facing message."""

    def __init__(self, field_name: str, reason: str):
        self.field = field_name
        self.reason = reason
        super().__init__(f"{field_name}: {reason}")


def parse_memory_mb(value: str | int, field_name: str = "memory") -> int:
    """'6G', '512M', '2.5GiB' or a plain number of MiB → MiB."""
    if isinstance(value, bool):
        raise JobSpecError(field_name, "must be a size such as '6G' or '512M'")
    if isinstance(value, int):
        mb = value
    else:
        m = _MEMORY_RE.match(str(value))
        if not m:
            raise JobSpecError(field_name, f"{value!r} is not a size such as '6G' or '512M'")
        number, unit = float(m.group(1)), m.group(2).upper()
        factor = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}[unit]
        mb = int(number * factor)
    if mb < 1:
        raise JobSpecError(field_name, "must be at least 1M")
    return mb


def parse_walltime_s(value: str | int, field_name: str = "walltime") -> int:
    """'24:00:00', '1-00:00:00', '90:00' (h:mm) or seconds → seconds."""
    if isinstance(value, bool):
        raise JobSpecError(field_name, "must be a duration such as '24:00:00'")
    if isinstance(value, int):
        seconds = value
    else:
        m = _WALLTIME_RE.match(str(value).strip())
        if not m:
            raise JobSpecError(
                field_name, f"{value!r} is not a duration such as '24:00:00' or '1-00:00:00'"
            )
        days, hours, minutes, secs = (int(g) if g else 0 for g in m.groups())
        if minutes >= 60 or secs >= 60:
            raise JobSpecError(field_name, f"{value!r}: minutes and seconds must be below 60")
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    if seconds < 60:
        raise JobSpecError(field_name, "must be at least one minute")
    return seconds


def dask_worker_job_name(session_job_id: str) -> str:
    """The scheduler job name of a session's Dask workers (``ink_dask``): it carries the
    session's job id, so that one ``scancel --name`` as the user cancels exactly them."""
    return "ink-dask-" + re.sub(r"[^0-9A-Za-z.]", "-", session_job_id)


@dataclass(frozen=True)
class JobSpec:
    """Everything a backend needs to run one session as a job.

    ``command`` is an argv list run on the worker (never a shell string). ``env`` carries the
    session's secrets (the server's API token): backends pass it through the process
    environment of the submitting command, never through argv or a script file.
    """

    user: str
    name: str
    command: tuple[str, ...]
    env: dict[str, str] = field(repr=False)
    workdir: str
    output_path: str
    cpus: int = 1
    memory_mb: int = 6 * 1024
    gpus: int = 0
    walltime_s: int = 24 * 3600
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    image: str | None = None
    requirements: str | None = None  # HTCondor ClassAd expression from the site catalogue
    max_walltime_s: int | None = None  # the most wall time this session may ever get (its profile's limit)
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not USERNAME_RE.match(self.user or ""):
            raise JobSpecError("user", f"{self.user!r} is not a valid Unix user name")
        if not NAME_RE.match(self.name or ""):
            raise JobSpecError("name", f"{self.name!r} is not a valid session name")
        if not self.command or not all(isinstance(a, str) and "\0" not in a for a in self.command):
            raise JobSpecError("command", "must be a non-empty list of strings")
        object.__setattr__(self, "command", tuple(self.command))
        for key, value in self.env.items():
            if not ENV_KEY_RE.match(key) or not isinstance(value, str) or "\0" in value:
                raise JobSpecError("env", f"invalid environment entry {key!r}")
        for path_field in ("workdir", "output_path"):
            path = getattr(self, path_field)
            if not path.startswith("/") or "\0" in path or "\n" in path:
                raise JobSpecError(path_field, "must be an absolute path")
        for int_field, low, high in (("cpus", 1, 4096), ("gpus", 0, 64),
                                     ("memory_mb", 1, 64 * 1024 * 1024),
                                     ("walltime_s", 60, 366 * 24 * 3600)):
            value = getattr(self, int_field)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise JobSpecError(int_field, f"must be an integer from {low} to {high}")
        if self.max_walltime_s is not None and (
                isinstance(self.max_walltime_s, bool) or not isinstance(self.max_walltime_s, int)
                or self.max_walltime_s < 60):
            raise JobSpecError("max_walltime_s", "must be an integer of at least 60")
        for word_field in ("partition", "account", "qos"):
            value = getattr(self, word_field)
            if value is not None and not WORD_RE.match(value):
                raise JobSpecError(word_field, f"{value!r} is not a valid scheduler name")
        if self.image is not None and (not self.image.startswith("/") or "\0" in self.image):
            raise JobSpecError("image", "must be an absolute path to a container image")
        if self.requirements is not None and any(c in self.requirements for c in "\0\n"):
            raise JobSpecError("requirements", "must be a one-line ClassAd expression")
        for key, value in self.tags.items():
            if not WORD_RE.match(key) or not WORD_RE.match(value):
                raise JobSpecError("tags", f"invalid tag {key!r}={value!r}")

    @property
    def job_name(self) -> str:
        """The scheduler-visible job name: says what it is, carries no secret."""
        return f"ink-{self.name}"
