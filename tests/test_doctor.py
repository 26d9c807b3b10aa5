"""`ink-hub doctor` against the real dev Slurm, MUNGE, a real hub, a real OpenID Connect provider
and a real KDC, healthy and with faults injected.

Slurm and the cluster's munged are shared with other test runs, so faults are injected without
stopping them: a partition the cluster does not have, a MUNGE socket path that does not exist, a
hub API URL nothing listens on, a PATH without the Slurm commands, a slurm.conf whose controller
port is dead, an image that is not there, a job PATH without the apps' programs. "munge stopped"
is real: a munged of the test's own (user munge, the cluster's key, its own socket) answers the
doctor and is then stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .conftest import wait_for
from .harness import VENV_BIN, free_port
from .test_site_init import init, site_args

INK_HUB = str(VENV_BIN / "ink-hub")


def doctor(site, *args, env=None, timeout=400):
    r = subprocess.run([INK_HUB, "doctor", "--dir", str(site), "--json", *args], capture_output=True, text=True,
                       timeout=timeout, env=env)
    assert "Traceback" not in r.stderr, r.stderr
    report = json.loads(r.stdout)
    return r.returncode, {row["check"]: row for row in report["checks"]}, report


def make_site(tmp_path, **settings):
    site = tmp_path / "site"
    port = free_port()
    values = {"hub_bind_url": f"http://127.0.0.1:{port}", "hub_connect_url": f"http://127.0.0.1:{port}",
              "partition": "debug", **settings}
    r = init(site, "--profile", "slurm-site", *site_args(tmp_path, **values))
    assert r.returncode == 0, r.stderr
    return site


def edit_overlay(site, old: str, new: str):
    path = site / "site.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.slurm
def test_healthy_site(tmp_path, dev_slurm, unix_users):
    site = make_site(tmp_path)
    code, rows, report = doctor(site, "--test-user", "alice")
    failed = {k: v for k, v in rows.items() if v["status"] == "fail"}
    assert code == 0 and report["ok"], failed
    for check in ("Slurm: commands", "MUNGE", "Slurm: controller", "Slurm: partitions", "test job",
                  "shared home", "hub API from a node", "apps on nodes", "clock skew: nodes", "CHP",
                  "secrets", "free disk: state"):
        assert rows[check]["status"] == "ok", rows[check]
    assert "debug exist" in rows["Slurm: partitions"]["detail"]
    assert "stand-in" in rows["hub API from a node"]["detail"]  # no hub runs: the doctor listened itself
    # the test job's files are gone from alice's home
    assert not [n for n in os.listdir(os.path.expanduser("~alice")) if n.startswith(".ink-doctor-")]
    # the human-readable table
    table = subprocess.run([INK_HUB, "doctor", "--dir", str(site)], capture_output=True, text=True, timeout=300)
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["CHECK", "STATUS", "DETAIL"]
    assert "fix: give --test-user USER" in table.stdout  # without a test user: a warning with its fix


@pytest.mark.slurm
def test_faults_are_failures_with_fixes(tmp_path, dev_slurm, unix_users):
    site = make_site(tmp_path)
    edit_overlay(site, "partition: debug", "partition: no-such-partition")
    edit_overlay(site, "members:\n      everyone: true", "members:\n      unix_groups: [no-such-group]")
    edit_overlay(site, "hub:\n", "images:\n  el9: {title: EL9, path: /nonexistent/el9.sif}\nhub:\n")
    edit_overlay(site, "    presets:\n", "    images: [el9]\n    default_image: el9\n    presets:\n")
    dead = free_port()
    code, rows, report = doctor(site, "--test-user", "alice", "--munge-socket", "/nonexistent/munge.socket.2",
                                "--hub-api-url", f"http://127.0.0.1:{dead}/hub/api", "--min-free-disk", "1e9")
    assert code == 1 and not report["ok"]
    expect = {
        "MUNGE": "/nonexistent/munge.socket.2",
        "Slurm: partitions": "no-such-partition (experiments main)",
        "unix groups": "no-such-group",
        "Apptainer images": "/nonexistent/el9.sif",
        "free disk: state": "GiB free",
        "test job": "sbatch as alice",  # the job asks for the missing partition
    }
    for check, words in expect.items():
        assert rows[check]["status"] == "fail", rows[check]
        assert words in rows[check]["detail"], rows[check]
        assert rows[check]["fix"], rows[check]

    # the partition back: the job runs, and finds what is wrong on the node
    edit_overlay(site, "partition: no-such-partition", "partition: debug")
    edit_overlay(site, "hub:\n", "hub:\n  InkSpawner:\n    job_path: /nonexistent/bin\n")
    assert "  - desktop\n" in (site / "site.yaml").read_text()  # its programs are looked up on the node
    code, rows, _ = doctor(site, "--test-user", "alice", "--hub-api-url", f"http://127.0.0.1:{dead}/hub/api")
    assert code == 1
    assert rows["test job"]["status"] == "ok"
    assert rows["hub API from a node"]["status"] == "fail"
    assert f"127.0.0.1:{dead}" in rows["hub API from a node"]["detail"]
    assert "hub_bind_url" in rows["hub API from a node"]["fix"]
    assert rows["apps on nodes"]["status"] == "fail" and "Xvnc" in rows["apps on nodes"]["detail"]
    assert rows["images on nodes"]["status"] == "fail"
    assert rows["MUNGE"]["status"] == "ok"


MUNGED = "/usr/sbin/munged"


def _munge_answers(socket: Path) -> bool:
    cred = subprocess.run(["munge", "-n", "-S", str(socket)], capture_output=True, timeout=30)
    return cred.returncode == 0 and subprocess.run(["unmunge", "-S", str(socket)], input=cred.stdout,
                                                   capture_output=True, timeout=30).returncode == 0


@pytest.mark.slurm
def test_munged_stopped_is_a_failure_with_a_fix(tmp_path, dev_slurm):
    """A real munged (as user munge, with the cluster's key, as scripts/dev-slurm starts it) on a
    socket of its own: the doctor passes through it, then fails with a fix once it is stopped.
    The cluster's own munged is left running: other test runs share it."""
    site = make_site(tmp_path)
    run_dir = Path(tempfile.mkdtemp(prefix="ink-doctor-munge-"))
    shutil.chown(run_dir, "munge", "munge")
    run_dir.chmod(0o755)
    socket = run_dir / "munge.socket"
    munged = ["/usr/sbin/runuser", "-u", "munge", "--", MUNGED, f"--socket={socket}",
              f"--pid-file={run_dir}/munged.pid", f"--seed-file={run_dir}/seed", f"--log-file={run_dir}/munged.log",
              "--key-file=/etc/munge/munge.key"]
    try:
        subprocess.run(munged, check=True, timeout=60)
        wait_for(lambda: _munge_answers(socket), message="the test's munged answers")
        code_before, rows, _ = doctor(site, "--munge-socket", str(socket), "--timeout", "30")
        assert rows["MUNGE"]["status"] == "ok" and str(socket) in rows["MUNGE"]["detail"], rows["MUNGE"]
        failed_before = {k for k, v in rows.items() if v["status"] == "fail"}

        subprocess.run([*munged[:5], f"--socket={socket}", "--stop"], check=True, timeout=60)
        wait_for(lambda: not _munge_answers(socket), message="munged stopped")
        code, rows, report = doctor(site, "--munge-socket", str(socket), "--timeout", "30")
        assert code == 1 and not report["ok"]
        # the stopped munged is the one new failure (so it alone can make a healthy site fail)
        assert {k for k, v in rows.items() if v["status"] == "fail"} - failed_before == {"MUNGE"}
        assert code_before == 0 or failed_before, code_before
        munge = rows["MUNGE"]
        assert munge["status"] == "fail" and str(socket) in munge["detail"], munge
        assert "start munged" in munge["fix"] and "munge.key" in munge["fix"], munge
        table = subprocess.run([INK_HUB, "doctor", "--dir", str(site), "--munge-socket", str(socket),
                                "--timeout", "30"], capture_output=True, text=True, timeout=400)
        assert table.returncode != 0 and "fix: start munged" in table.stdout, table.stdout
    finally:
        subprocess.run([*munged[:5], f"--socket={socket}", "--stop"], capture_output=True, timeout=60)
        shutil.rmtree(run_dir, ignore_errors=True)
    assert _munge_answers(Path("/run/munge/munge.socket.2"))  # the cluster's munged never stopped


def test_app_programs_come_from_the_apps_table(monkeypatch):
    """The doctor's test job looks on the nodes for the programs of the apps' own table
    (ink_proxy_ext.apps.STACKS), so the two cannot drift apart."""
    from ink_hub.doctor import slurm
    from ink_proxy_ext.apps import STACKS, stack_programs

    assert not hasattr(slurm, "APP_PROGRAMS")
    assert stack_programs("desktop") == [("Xvnc", None), ("openbox", None), ("xterm", None)]
    assert stack_programs("vscode") == [("code-server", "/opt/ink-apps/node_modules/.bin/code-server")]
    assert stack_programs("enode") == [("sshd", "/usr/sbin/sshd")]
    assert stack_programs("jupyter") == []  # a module, shipped with the package: not a node program
    # enode's sshd is part of its stack: a machine without it does not offer enode (the demo)
    from ink_proxy_ext.apps import missing_stack

    monkeypatch.setenv("INK_SSHD", "/nonexistent/sshd")
    assert missing_stack("enode") == [("sshd (OpenSSH server)", "apt install openssh-server")]
    for name, stack in STACKS.items():
        programs = [probe[1] for _, probe, _ in stack if probe[0] == "program"]
        assert [p for p, _ in stack_programs(name)] == programs, name
    # the hub may import the job side's table only because it needs nothing but the standard library
    import ast
    import sys

    import ink_proxy_ext.apps

    for module in (ink_proxy_ext.apps, sys.modules["ink_proxy_ext"]):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level}
        assert imported <= set(sys.stdlib_module_names) | {"__future__"}, (module.__name__, imported)


@pytest.mark.slurm
def test_scheduler_commands_missing_or_down(tmp_path, dev_slurm):
    site = make_site(tmp_path)
    code, rows, _ = doctor(site, "--path", "/nonexistent")
    assert code == 1
    assert rows["Slurm: commands"]["status"] == "fail"
    assert "sbatch" in rows["Slurm: commands"]["detail"] and "slurm-client" in rows["Slurm: commands"]["fix"]
    assert rows["MUNGE"]["status"] == "fail"
    # a slurm.conf whose controller port has nothing listening: slurmctld "down"
    d = tempfile.mkdtemp(prefix="ink-dead-slurm-")
    conf = open("/etc/slurm/slurm.conf").read().replace("SlurmctldHost=", "SlurmctldPort=9\nSlurmctldHost=", 1)
    with open(f"{d}/slurm.conf", "w") as f:
        f.write(conf)
    code, rows, _ = doctor(site, "--timeout", "30", env=dict(os.environ, SLURM_CONF=f"{d}/slurm.conf"))
    assert code == 1
    assert rows["Slurm: controller"]["status"] == "fail", rows["Slurm: controller"]
    assert "slurmctld" in rows["Slurm: controller"]["fix"]
    assert rows["MUNGE"]["status"] == "ok"  # munged itself is fine


@pytest.mark.slurm
@pytest.mark.hub
def test_a_running_hub_answers_the_test_job(tmp_path, dev_slurm, hub_factory):
    hub = hub_factory()
    site = make_site(tmp_path, hub_bind_url=f"http://127.0.0.1:{hub.hub_port}",
                     hub_connect_url=f"http://127.0.0.1:{hub.hub_port}")
    code, rows, _ = doctor(site, "--test-user", "bob")
    assert "hub API from a node" in rows, rows  # the test job ran
    assert rows["hub API from a node"]["status"] == "ok", rows["hub API from a node"]
    assert "(the hub)" in rows["hub API from a node"]["detail"]
    assert code == 0


@pytest.mark.oidc
def test_oidc_discovery(tmp_path):
    from .test_sso_oidc import Provider

    port = free_port()
    provider = Provider(tmp_path, port, "https://hub.example.org/hub/oauth_callback", "https://hub.example.org/")
    provider.start()
    try:
        site = tmp_path / "site"
        r = init(site, "--profile", "course", *site_args(
            tmp_path, authenticator="ink-oidc", oidc_issuer=provider.url, oidc_client_id="ink-hub",
            oidc_client_secret="s3cret-value-for-the-test"))
        assert r.returncode == 0, r.stderr
        overlay = (site / "site.yaml").read_text()
        assert f"authorize_url: {provider.url}/" in overlay and "s3cret-value" not in overlay
        assert (site / "secrets" / "oidc-client-secret").read_text().strip() == "s3cret-value-for-the-test"
        assert "s3cret" not in (site / ".ink-hub-init.json").read_text()
        code, rows, _ = doctor(site)
        assert rows["OIDC discovery"]["status"] == "ok" and provider.url in rows["OIDC discovery"]["detail"]
        assert rows["clock skew: provider"]["status"] == "ok"
    finally:
        provider.stop()
    code, rows, _ = doctor(site)
    assert code == 1
    assert rows["OIDC discovery"]["status"] == "fail" and "ConnectionRefused" in rows["OIDC discovery"]["detail"]


@pytest.mark.kdc
def test_kerberos_kdc_and_keytab(tmp_path):
    import k5test

    realm = k5test.K5Realm()
    try:
        site = tmp_path / "site"
        assert init(site, "--profile", "course", *site_args(
            tmp_path, authenticator="ink-kerberos", kerberos_realm=realm.realm)).returncode == 0
        env = dict(os.environ, **realm.env)
        os.chmod(realm.keytab, 0o600)
        code, rows, _ = doctor(site, "--keytab", realm.keytab, env=env)
        assert rows["Kerberos: KDC"]["status"] == "ok", rows["Kerberos: KDC"]
        assert rows["Kerberos: keytab"]["status"] == "ok", rows["Kerberos: keytab"]
        os.chmod(realm.keytab, 0o644)
        code, rows, _ = doctor(site, "--keytab", realm.keytab, env=env)
        assert code == 1 and "readable by others" in rows["Kerberos: keytab"]["detail"]
    finally:
        realm.stop()
    code, rows, _ = doctor(site, "--timeout", "15", env=env)
    assert code == 1 and rows["Kerberos: KDC"]["status"] == "fail"
