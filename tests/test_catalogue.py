"""The layered site configuration: merge rules, validation messages, the CLI."""

from __future__ import annotations

import subprocess

import pytest
from traitlets.config import Config

from ink_hub.catalogue.load import BUILTIN, CatalogueError, deep_merge, load_site
from ink_hub.config import apply_site

from .harness import VENV_BIN

PROFILE = """
site: {name: IHEP INK, max_sessions_per_user: 3}
images:
  alma9: {title: AlmaLinux 9, path: /cvmfs/img/alma9.sif}
  centos7: {title: CentOS 7, path: /cvmfs/img/centos7.sif}
experiments:
  juno:
    title: JUNO
    members: {groups: [juno], unix_groups: [juno]}
    apps: [jupyter]
    images: [alma9, centos7]
    default_image: alma9
    limits: {cpus: 4}
    routing:
      slurm: {partition: juno, account: juno}
      htcondor: {accounting_group: group_juno, requirements: 'TARGET.HasCVMFS =?= true'}
    setup: /cvmfs/juno.ihep.ac.cn/setup.sh
hub:
  InkSpawner: {backend: slurm}
  SlurmBackend: {poll_interval: 15}
"""

OVERLAY = """
site: {name: IHEP INK (test)}
experiments:
  juno:
    images: [alma9]
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_layers_merge_dicts_and_replace_lists(tmp_path):
    site = load_site([write(tmp_path, "profile.yaml", PROFILE), write(tmp_path, "site.yaml", OVERLAY)])
    cat = site.catalogue
    assert cat.site.name == "IHEP INK (test)" and cat.site.max_sessions_per_user == 3  # merged
    assert cat.experiments["juno"].images == ["alma9"]  # the overlay's list replaced the profile's
    assert cat.experiments["juno"].routing.slurm.partition == "juno"  # kept from the profile
    assert set(cat.experiments) == {"juno"} and "jupyter" in cat.apps  # built-in defaults underneath
    assert cat.defaults.memory == "6G" and cat.defaults.walltime == "24:00:00"
    assert site.sources == [BUILTIN, str(tmp_path / "profile.yaml"), str(tmp_path / "site.yaml")]


def test_hub_section_becomes_traitlets_config(tmp_path):
    site = load_site([write(tmp_path, "profile.yaml", PROFILE)])
    c = Config()
    apply_site(c, site)
    assert c.InkSpawner.backend == "slurm" and c.SlurmBackend.poll_interval == 15
    assert set(c.InkSpawner.apps) == {"jupyter", "portal", "vscode", "desktop", "rootbrowse", "enode"}
    assert c.InkSpawner.apps["portal"]["backend"] == "local"
    assert callable(c.InkSpawner.resolver)


@pytest.mark.parametrize("text, where, reason", [
    ("experiments: {juno: {title: J, apps: [nosuchapp]}}", "experiments.juno", "'nosuchapp' is not defined in apps"),
    ("limits: {memory: lots}", "limits.memory", "not a size"),
    ("defaults: {cpus: 0}", "defaults.cpus", "greater than or equal to 1"),
    ("experiments: {juno: {title: J, apps: [jupyter], colour: red}}", "experiments.juno.colour",
     "Extra inputs are not permitted"),
    ("images: {a9: {title: A, path: relative/x.sif}}", "images.a9.path", "String should match"),
    ("experiments: {Bad Name: {title: J, apps: [jupyter]}}", "experiments.Bad Name", ""),
    ("experiments: {juno: {title: J, apps: [jupyter], images: [], default_image: alma9}}",
     "experiments.juno", "default_image 'alma9' is not in images"),
    ("overrides: {alice: {experiments: [cms]}}", "overrides.alice.experiments", "'cms' is not an experiment"),
    ("hub: {jupyterhub: {bind_url: x}}", "hub.jupyterhub", "must be a class name"),
    ("experiments: {juno: {title: J, apps: [jupyter], kernels: {k: {display_name: K, argv: [python]}}}}",
     "experiments.juno.kernels.k.argv", "{connection_file}"),
])
def test_errors_name_file_key_and_reason(tmp_path, text, where, reason):
    path = write(tmp_path, "site.yaml", text)
    with pytest.raises(CatalogueError) as e:
        load_site([path])
    message = "\n".join(e.value.problems)
    assert path in message and where in message and reason in message, message


def test_error_in_a_lower_layer_names_that_layer(tmp_path):
    profile = write(tmp_path, "profile.yaml", "limits: {walltime: forever}")
    overlay = write(tmp_path, "site.yaml", "site: {name: X}")
    with pytest.raises(CatalogueError) as e:
        load_site([profile, overlay])
    assert e.value.problems == [f"{profile}: limits.walltime: 'forever' is not a duration such as "
                                "'24:00:00' or '1-00:00:00'"]


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "site.yaml", "site:\n  name: ok\n bad: [\n")
    with pytest.raises(CatalogueError) as e:
        load_site([path])
    assert e.value.problems[0].startswith(f"{path}: line ") and "not valid YAML" in e.value.problems[0]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CatalogueError, match="nope.yaml: cannot read"):
        load_site([str(tmp_path / "nope.yaml")])


def test_deep_merge_records_the_last_writer():
    origin = {}
    merged = deep_merge({}, {"a": {"b": 1, "c": [1]}}, "one", origin)
    deep_merge(merged, {"a": {"c": [2]}}, "two", origin)
    assert merged == {"a": {"b": 1, "c": [2]}}
    assert origin[("a", "b")] == "one" and origin[("a", "c")] == "two"


def test_cli_prints_merged_config_or_errors(tmp_path):
    good = write(tmp_path, "profile.yaml", PROFILE)
    r = subprocess.run([str(VENV_BIN / "ink-hub"), "config", "check", good], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "juno:" in r.stdout and "partition: juno" in r.stdout and "builtin:defaults.yaml" in r.stdout
    bad = write(tmp_path, "bad.yaml", "limits: {cpus: many}")
    r = subprocess.run([str(VENV_BIN / "ink-hub"), "config", "check", good, bad], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{bad}: limits.cpus:" in r.stderr and "integer" in r.stderr


def test_hub_refuses_to_start_with_an_invalid_site(tmp_path):
    bad = write(tmp_path, "bad.yaml", "experiments: {juno: {title: J, apps: [nosuch]}}")
    config = write(tmp_path, "jupyterhub_config.py",
                   f"from ink_hub.config import configure\nconfigure(get_config(), [{bad!r}])\n")
    r = subprocess.run([str(VENV_BIN / "jupyterhub"), "-f", config, "--JupyterHub.hub_port=0"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode != 0
    assert f"{bad}: experiments.juno.apps" in r.stderr or f"{bad}: experiments.juno" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("text, expected", [
    ("defaults: {cpus: null}", "defaults.cpus: must be set"),
    ("experiments: {juno: {title: J, apps: [jupyter], defaults: {memory: 40G}}}",
     "experiments.juno.defaults: memory 40G is above the limit 32G"),
    ("presets: {huge: {title: H, cpus: 64, memory: 1G}}\n"
     "experiments: {juno: {title: J, apps: [jupyter], presets: [huge]}}",
     "experiments.juno.presets: preset 'huge' cpus 64 is above the limit 8"),
    ("experiments: {juno: {title: J, apps: [jupyter], routing: {htcondor: {requirements: \"a\\nb\"}}}}",
     "experiments.juno.routing.htcondor.requirements"),
])
def test_values_every_spawn_would_refuse_are_caught_at_check(tmp_path, text, expected):
    with pytest.raises(CatalogueError) as e:
        load_site([write(tmp_path, "site.yaml", text)])
    assert expected in "\n".join(e.value.problems)


def test_cli_never_prints_hub_values(tmp_path):
    path = write(tmp_path, "site.yaml", "hub:\n  GenericOAuthenticator: {client_secret: hunter2, client_id: ink}\n"
                 "  JupyterHub: {db_url: 'postgresql://jhub:S3cret@db/jhub', api_tokens: {tok-ABC: svc}}\n")
    r = subprocess.run([str(VENV_BIN / "ink-hub"), "config", "check", path], capture_output=True, text=True)
    assert r.returncode == 0
    for secret in ("hunter2", "S3cret", "tok-ABC"):
        assert secret not in r.stdout
    assert "client_secret: (set)" in r.stdout and "db_url: (set)" in r.stdout


def test_site_templates_come_before_inks(tmp_path):
    site = load_site([write(tmp_path, "site.yaml", "hub:\n  JupyterHub: {template_paths: [/etc/ink/templates]}\n")])
    c = Config()
    apply_site(c, site)
    assert c.JupyterHub.template_paths[0] == "/etc/ink/templates"
    assert c.JupyterHub.template_paths[-1].endswith("ink_hub/templates")


def test_app_backend_must_be_installed(tmp_path):
    with pytest.raises(CatalogueError) as e:
        load_site([write(tmp_path, "site.yaml", "apps: {portal: {title: P, default_url: /lab, backend: pbs}}")])
    assert "apps.portal.backend: unknown INK backend 'pbs'" in "\n".join(e.value.problems)


def test_app_defaults_go_over_the_experiments_and_are_lowered_to_the_limits():
    """Enode's own size (4 cores, 8G in the built-in defaults) for its sessions, never more than
    a user may have: an experiment limited to 2 cores gets 2, not a refused spawn."""
    from ink_hub.catalogue.model import Resources, app_defaults

    catalogue = load_site([]).catalogue
    enode = catalogue.apps["enode"]
    assert (enode.defaults.cpus, enode.defaults.memory) == (4, "8G")
    base = Resources(cpus=1, memory="6G", gpus=0, walltime="24:00:00")
    roomy = Resources(cpus=8, memory="32G", gpus=0, walltime="72:00:00")
    assert app_defaults(base, enode, roomy).model_dump() == {"cpus": 4, "memory": "8G", "gpus": 0,
                                                             "walltime": "24:00:00"}
    small = Resources(cpus=2, memory="4G", gpus=0, walltime="72:00:00")
    assert app_defaults(base, enode, small).model_dump()["cpus"] == 2
    assert app_defaults(base, enode, small).model_dump()["memory"] == "4G"
    assert app_defaults(base, catalogue.apps["jupyter"], small) == base  # no defaults of its own
