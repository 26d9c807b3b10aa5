"""The one validator: the same request is refused with the same message whether it asks for an
interactive session or a batch job, and every caller (catalogue resolver, default resolver, job
API) goes through it. Pure: no daemon."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from ink_spawner.validator import (ExperimentProfile, Profile, Refused, check_job, check_session)

REPO = Path(__file__).resolve().parent.parent

PROFILE = Profile(
    backend="slurm",
    experiments={
        "juno": ExperimentProfile(
            name="juno", title="JUNO", apps=("jupyter", "portal"),
            defaults={"cpus": 1, "memory": "2G", "gpus": 0, "walltime": "1:00:00"},
            limits={"cpus": 4, "memory": "8G", "gpus": 1, "walltime": "24:00:00"},
            images={"el9": "/cvmfs/img/el9.sif"}, routing={"partition": "juno", "account": "juno-acct"}),
        "lhaaso": ExperimentProfile(
            name="lhaaso", title="LHAASO", apps=("jupyter",),
            defaults={"cpus": 1, "memory": "1G", "gpus": 0, "walltime": "1:00:00"},
            limits={"cpus": 1, "memory": "1G", "gpus": 0, "walltime": "2:00:00"}),
    },
    site_experiments=frozenset({"juno", "lhaaso", "besiii"}),
    max_sessions=2,
)

# (options, field, message): each refused identically for a session and for a batch job
REFUSED = [
    ({"cpus": 5}, "cpus", "cpus: 5 is outside the allowed range 1-4"),
    ({"cpus": 0}, "cpus", "cpus: 0 is outside the allowed range 1-4"),
    ({"cpus": "2"}, "cpus", "cpus: must be an integer"),
    ({"cpus": True}, "cpus", "cpus: must be an integer"),
    ({"gpus": 2}, "gpus", "gpus: 2 is outside the allowed range 0-1"),
    ({"memory": "9G"}, "memory", "memory: 9G is more than your limit 8G"),
    ({"memory": 1024}, "memory", "memory: must be a string"),
    ({"memory": "1G --uid=0"}, "memory", None),
    ({"memory": "9" * 40}, "memory", None),
    ({"walltime": "25:00:00"}, "walltime", "walltime: 25:00:00 is more than your limit 24:00:00"),
    ({"walltime": "1:00:00\n#SBATCH --uid=0"}, "walltime", "walltime: must be a short printable string"),
    ({"walltime": "\u0661:00:00"}, "walltime", None),
    ({"image": "el7"}, "image", "image: 'el7' is not offered by 'juno' (offered: el9)"),
    ({"image": "../../etc/passwd"}, "image", None),
    ({"experiment": "besiii"}, "experiment", "experiment: you are not a member of 'besiii' (yours: juno, lhaaso)"),
    ({"experiment": "cms"}, "experiment", "experiment: unknown experiment 'cms' (yours: juno, lhaaso)"),
    ({"experiment": "juno; scancel -u bob"}, "experiment", None),
    ({"experiment": "lhaaso", "cpus": 2}, "cpus", "cpus: 2 is outside the allowed range 1-1"),
    ({"partition": "gpu"}, "partition", None),  # routing is the catalogue's, never the user's
]


@pytest.mark.parametrize("options, field, message", REFUSED)
def test_sessions_and_jobs_are_refused_alike(tmp_path, options, field, message):
    with pytest.raises(Refused) as session:
        check_session(PROFILE, dict(options), app="jupyter", app_title="JupyterLab")
    with pytest.raises(Refused) as job:
        check_job(PROFILE, {"command": ["true"], **options}, home=str(tmp_path))
    assert session.value.field == job.value.field == field
    if "unknown field" in str(session.value):  # each lists the fields of its own kind
        assert session.value.reason.startswith("unknown field") and job.value.reason.startswith("unknown field")
    else:
        assert str(session.value) == str(job.value)
    if message is not None:
        assert str(session.value) == message


def test_a_session_and_a_job_inside_the_profile_get_the_same_decision(tmp_path):
    options = {"experiment": "juno", "cpus": 3, "memory": "4G", "walltime": "2:00:00", "image": "el9"}
    session = check_session(PROFILE, dict(options), app="jupyter")
    job = check_job(PROFILE, {"command": ["hostname"], **options}, home=str(tmp_path))
    assert session.jobspec_fields() == job.jobspec_fields() == {
        "cpus": 3, "memory_mb": 4096, "gpus": 0, "walltime_s": 7200, "max_walltime_s": 86400,
        "image": "/cvmfs/img/el9.sif", "partition": "juno", "account": "juno-acct"}
    assert job.argv == ("hostname",) and job.workdir == str(tmp_path)


def test_session_only_rules():
    with pytest.raises(Refused, match=r"^app: JupyterLab is not available in experiment 'juno'$"):
        check_session(PROFILE, {"experiment": "juno"}, app="lab2", app_title="JupyterLab")
    # no experiment named: the first of the user's that offers the app
    assert check_session(PROFILE, {}, app="jupyter").experiment == "juno"
    with pytest.raises(Refused, match=r"^sessions: you already have 2 sessions running \(limit 2\)"):
        check_session(PROFILE, {}, app="jupyter", other_sessions=2)
    with pytest.raises(Refused, match=r"^user_options: must be a JSON object$"):
        check_session(PROFILE, ["cpus", 2], app="jupyter")


def test_an_apps_own_defaults_apply_to_its_sessions_only(tmp_path):
    """Enode starts with more cores: its defaults (already within the limits) are in the profile."""
    from dataclasses import replace

    juno = replace(PROFILE.experiments["juno"], apps=("jupyter", "enode"),
                   app_defaults={"enode": {"cpus": 4, "memory": "8G", "gpus": 0, "walltime": "1:00:00"}})
    profile = replace(PROFILE, experiments={"juno": juno})
    assert check_session(profile, {}, app="enode").cpus == 4
    assert check_session(profile, {"cpus": 2}, app="enode").cpus == 2  # asked for: that wins
    assert check_session(profile, {}, app="jupyter").cpus == 1
    assert check_job(profile, {"command": ["x"]}, home=str(tmp_path)).cpus == 1
    assert Profile.from_json(profile.to_json()) == profile


def test_no_experiment_no_work(tmp_path):
    nobody = Profile(backend="slurm", experiments={})
    for check in (lambda: check_session(nobody, {}, app="jupyter"),
                  lambda: check_job(nobody, {"command": ["x"]}, home=str(tmp_path))):
        with pytest.raises(Refused, match="^experiment: you are not a member of any experiment"):
            check()


def test_profile_round_trips_through_json():
    again = Profile.from_json(PROFILE.to_json())
    assert again == PROFILE
    public = again.public()
    assert "routing" not in json.dumps(public) and "/cvmfs" not in json.dumps(public)


async def test_default_resolver_uses_the_same_validator():
    """Without a catalogue, the spawner's own traits make the profile; the rules are the same."""
    from types import SimpleNamespace

    from jupyterhub.spawner import SpawnException
    from traitlets.config import Config

    from ink_spawner.spawner import InkSpawner

    spawner = InkSpawner(config=Config({"DefaultResolver": {"max_cpus": 2, "max_memory": "4G"}}))
    spawner.user = SimpleNamespace(name="alice")
    spawner.orm_spawner = SimpleNamespace(name="jupyter", server=None)
    for options, message in (({"cpus": 3}, "cpus: 3 is outside the allowed range 1-2"),
                             ({"memory": "8G"}, "memory: 8G is more than your limit 4G"),
                             ({"cpus": "2"}, "cpus: must be an integer")):
        with pytest.raises(SpawnException) as e:
            await spawner.resolver(spawner, options)
        assert e.value.status_code == 400 and e.value.log_message == message


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(("." * node.level) + node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def _names_from_validator(path: Path) -> set[str]:
    return {alias.name for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("validator")
            for alias in node.names}


def test_one_owner_per_decision_in_the_code():
    """Nobody else re-implements the rules: the type loop and the limit checks live only in
    ink_spawner/validator.py, every caller imports its check, and the import directions hold."""
    callers = {"ink_hub/catalogue/resolve.py": "check_session", "ink_spawner/resolver.py": "check_session",
               "ink_files_ext/jobs/handlers.py": "check_job", "ink_dask/config.py": "check_dask"}
    for path, check in callers.items():
        assert check in _names_from_validator(REPO / path), path
    # the limit messages are the validator's words: no other module of any ink_* package (the
    # hub, the spawner, the user's services, the apps, ink_dask) writes them itself
    packages = sorted(p.name for p in REPO.glob("ink_*") if (p / "__init__.py").exists())
    assert {"ink_hub", "ink_spawner", "ink_files_ext", "ink_proxy_ext", "ink_dask"} <= set(packages)
    for package in packages:
        for path in (REPO / package).rglob("*.py"):
            if path == REPO / "ink_spawner" / "validator.py":
                continue
            text = path.read_text()
            for words in ("outside the allowed range", "more than your limit", "(dask.max_workers"):
                assert words not in text, f"{path} checks limits itself ({words!r})"
    # the job types have their own module: neither the backends' base nor the cache import back
    assert not any("status" in m and m != "..status" for m in _imports(REPO / "ink_spawner/jobstatus.py"))
    assert "..status" in _imports(REPO / "ink_spawner/backends/base.py")
    assert not any("backends" in m for m in _imports(REPO / "ink_spawner/status.py"))
    # ink_spawner and the job side import nothing of the hub
    for package in ("ink_spawner", "ink_files_ext", "ink_proxy_ext", "ink_dask"):
        for path in (REPO / package).rglob("*.py"):
            assert not any(m.startswith("ink_hub") for m in _imports(path)), path
