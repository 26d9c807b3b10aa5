"""`ink-hub init`: a site directory from a profile, run as the real command.

Every profile's output passes `ink-hub config check`; the demo and slurm-site outputs start a
real JupyterHub (with CHP, TLS from the self-signed certificate init made) that serves its login
and, for the demo, logs alice in to the INK panel. A second run changes nothing and says so; an
admin's edit survives a re-run without --force; the secrets survive everything.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from .harness import REPO, VENV_BIN, free_port
from .test_images import dockerfile_instructions, DOCKER_INSTRUCTIONS

INK_HUB = str(VENV_BIN / "ink-hub")
SECRETS = ("jupyterhub_cookie_secret", "crypt_key", "proxy-auth-token", "ssh-user-ca", "ssh-host-ca",
           "share-secret", "tls.key")


def init(site: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    argv = [INK_HUB, "init", "--dir", str(site), *args]
    if stdin is None:
        argv.append("--non-interactive")
    return subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=120)


def site_args(tmp_path: Path, **extra: str) -> list[str]:
    values = {"state_dir": str(tmp_path / "state"), **extra}
    return [a for k, v in values.items() for a in ("--set", f"{k}={v}")]


def secret_bytes(site: Path) -> dict:
    return {p.name: p.read_bytes() for p in (site / "secrets").iterdir()}


@pytest.mark.parametrize("profile", ["demo", "slurm-site", "htcondor-site", "course"])
def test_every_profile_passes_config_check(tmp_path, profile):
    site = tmp_path / "site"
    r = init(site, "--profile", profile, *site_args(tmp_path))
    assert r.returncode == 0, r.stderr
    check = subprocess.run([INK_HUB, "config", "check", "--dir", str(site)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert f"builtin:profiles/{profile}.yaml" in check.stdout
    backend = {"demo": "local", "course": "local", "slurm-site": "slurm", "htcondor-site": "htcondor"}[profile]
    merged = subprocess.run([sys.executable, "-c", "import sys, json; from ink_hub.catalogue.load import load_site; "
                             "from ink_hub.site import read_layers; "
                             "print(json.dumps(load_site(read_layers(sys.argv[1])).hub_config))", str(site)],
                            capture_output=True, text=True, check=True)
    assert json.loads(merged.stdout)["InkSpawner"]["backend"] == backend


def test_secrets_and_files(tmp_path):
    site = tmp_path / "site"
    r = init(site, "--profile", "slurm-site", *site_args(tmp_path, partition="debug", hostname="hub.example.org"))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((site / "secrets").stat().st_mode) == 0o700
    for name in SECRETS:
        path = site / "secrets" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        assert f"created    secrets/{name}" in r.stdout
    assert len((site / "secrets" / "crypt_key").read_text().strip()) == 64
    # the SSH CA is a real OpenSSH key; the certificate names the host
    assert (site / "secrets" / "ssh-user-ca.pub").read_text().startswith("ssh-ed25519 ")
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((site / "secrets" / "tls.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "hub.example.org" in sans.get_values_for_type(x509.DNSName)
    # no secret in any file outside secrets/, nor in the manifest
    secret_texts = [v.decode(errors="replace").strip() for v in secret_bytes(site).values()]
    for path in site.rglob("*"):
        if path.is_file() and "secrets" not in path.parts:
            text = path.read_text()
            assert not any(s and s in text for s in secret_texts if len(s) > 20), path
    unit = (site / "ink-hub.service").read_text()
    assert f"ExecStart={VENV_BIN}/jupyterhub -f {site}/jupyterhub_config.py" in unit
    assert "KillMode=process" in unit and "[Install]" in unit
    assert f"WorkingDirectory={tmp_path / 'state'}" in unit
    overlay = (site / "site.yaml").read_text()
    assert "partition: debug" in overlay and "hub_connect_url: http://hub.example.org:8081" in overlay
    config = (site / "jupyterhub_config.py").read_text()
    assert len([ln for ln in config.splitlines() if ln and not ln.startswith("#")]) <= 4  # thin


def test_hub_dockerfile(tmp_path):
    site = tmp_path / "site"
    assert init(site, "--profile", "slurm-site", *site_args(tmp_path)).returncode == 0
    path = site / "images" / "Dockerfile.hub"
    steps = dockerfile_instructions(path)
    assert steps[0] == ("FROM", "debian:12")
    assert {k for k, _ in steps} <= DOCKER_INSTRUCTIONS
    pinned = json.loads((REPO / "package.json").read_text())["dependencies"]["configurable-http-proxy"]
    assert ("ARG", f"CHP_VERSION={pinned.lstrip('^~=')}") in steps
    assert any(k == "RUN" and "slurm-client munge" in v for k, v in steps)
    cmd = dict(steps)["CMD"]
    assert json.loads(cmd) == ["/opt/ink-hub/venv/bin/jupyterhub", "-f", f"{site}/jupyterhub_config.py"]
    for k, v in steps:
        if k == "RUN":  # the build steps are valid shell
            subprocess.run(["bash", "-n", "-c", v], check=True)


def test_second_run_changes_nothing(tmp_path):
    site = tmp_path / "site"
    first = init(site, "--profile", "course", *site_args(tmp_path))
    assert first.returncode == 0, first.stderr
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in site.rglob("*") if p.is_file()}
    second = init(site)  # no --profile, no --set: the recorded ones
    assert second.returncode == 0, second.stderr
    assert "Nothing changed" in second.stdout
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in site.rglob("*") if p.is_file()}
    assert after == before


def test_admin_edit_kept_without_force_and_secrets_kept_always(tmp_path):
    site = tmp_path / "site"
    assert init(site, "--profile", "slurm-site", *site_args(tmp_path)).returncode == 0
    secrets_before = secret_bytes(site)
    overlay = site / "site.yaml"
    edited = overlay.read_text().replace("name: INK Hub", "name: IHEP INK")
    overlay.write_text(edited)
    # a changed setting would rewrite site.yaml, but the admin edited it: kept, new version beside it
    r = init(site, "--set", "partition=debug")
    assert r.returncode == 0, r.stderr
    assert "kept       site.yaml (edited since init wrote it" in r.stdout
    assert overlay.read_text() == edited
    assert "partition: debug" in (site / "site.yaml.ink-new").read_text()
    # files the admin did not edit follow the new settings
    assert init(site).stdout.count("kept       site.yaml") == 1
    r = init(site, "--force")
    assert "overwrote  site.yaml" in r.stdout
    assert "partition: debug" in overlay.read_text() and "IHEP INK" not in overlay.read_text()
    assert not (site / "site.yaml.ink-new").exists()
    assert secret_bytes(site) == secrets_before  # --force never regenerates a secret
    # a deleted file comes back; a secret with a loose mode is tightened
    (site / "ink-hub.service").unlink()
    (site / "secrets" / "crypt_key").chmod(0o644)
    r = init(site)
    assert "created    ink-hub.service" in r.stdout and "fixed      secrets/crypt_key (mode 0600)" in r.stdout
    assert secret_bytes(site) == secrets_before


def test_refusals_name_the_setting(tmp_path):
    site = tmp_path / "site"
    cases = [
        (["--profile", "slurm-site", "--set", "colour=red"], "--set colour: unknown setting"),
        (["--profile", "demo", "--set", "partition=x"], "--set partition: not a setting of the demo profile"),
        (["--profile", "slurm-site", "--set", "partition=a b"], "setting partition='a b': must be a Slurm word"),
        (["--profile", "slurm-site", "--set", "tls_cert=/nonexistent.crt", "--set", "tls_key=/nonexistent.key"],
         "setting tls_cert: /nonexistent.crt is not a file"),
        (["--profile", "slurm-site", "--set", "tls_cert=/etc/hostname"], "give both or neither"),
        (["--profile", "slurm-site", "--set", "authenticator=ink-oidc"], "setting oidc_issuer: required"),
        (["--profile", "course", "--set", "authenticator=dummy"], "only for the demo profile"),
        (["--profile", "slurm-site", "--set", "site_name=two\\nlines", "--set", "noequals"], "--set 'noequals': expected KEY=VALUE"),
        ([], "--profile: required for a new site"),
    ]
    for args, message in cases:
        r = init(site, *args, *site_args(tmp_path))
        assert r.returncode == 1, args
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert not (site / "site.yaml").exists()
    assert init(site, "--profile", "demo", *site_args(tmp_path)).returncode == 0
    r = init(site, "--profile", "course")
    assert r.returncode == 1 and "was made with --profile demo" in r.stderr


def test_interactive_answers(tmp_path):
    site = tmp_path / "site"
    answers = "\n".join(["Physics Hub", "", "", "", "", "", str(tmp_path / "state")]) + "\n"
    r = init(site, "--profile", "slurm-site", stdin=answers)
    assert r.returncode == 0, r.stderr
    assert "site_name — the name on the hub's pages [INK Hub]: " in r.stdout
    assert "name: Physics Hub" in (site / "site.yaml").read_text()
    assert str(tmp_path / "state") in (site / "site.yaml").read_text()


def _login(session: requests.Session, url: str, user: str, password: str) -> requests.Response:
    page = session.get(f"{url}/hub/login")
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    return session.post(f"{url}/hub/login", data={"username": user, "password": password, "_xsrf": xsrf})


class SiteHub:
    """``jupyterhub -f SITE/jupyterhub_config.py`` exactly as the systemd unit runs it."""

    def __init__(self, site: Path, state: Path):
        self.site, self.state = site, state
        self.log = state / "hub.log"
        self.proc = None

    def start(self, url: str, cert: Path, timeout: float = 90) -> "SiteHub":
        unit = (self.site / "ink-hub.service").read_text()
        exec_start = re.search(r"^ExecStart=(.+)$", unit, re.M).group(1).split()
        env = dict(os.environ, PATH=f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin")
        self.proc = subprocess.Popen(exec_start, cwd=self.state, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if requests.get(f"{url}/hub/api/", verify=str(cert), timeout=3).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"hub did not answer in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


@pytest.mark.hub
def test_demo_site_starts_a_hub_and_logs_in(tmp_path, unix_users):
    site, state = tmp_path / "site", tmp_path / "state"
    port, hub_port, api_port = free_port(), free_port(), free_port()
    r = init(site, "--profile", "demo", *site_args(tmp_path, bind_url=f"https://127.0.0.1:{port}",
                                                    hub_bind_url=f"http://127.0.0.1:{hub_port}",
                                                    proxy_api_url=f"http://127.0.0.1:{api_port}"))
    assert r.returncode == 0, r.stderr
    url, cert = f"https://127.0.0.1:{port}", site / "secrets" / "tls.crt"
    hub = SiteHub(site, state).start(url, cert)
    try:
        session = requests.Session()
        session.verify = str(cert)  # the self-signed certificate init made serves the hub
        session.trust_env = False  # a REQUESTS_CA_BUNDLE in the environment would replace it
        password = (site / "secrets" / "demo-password").read_text().strip()
        assert _login(session, url, "alice", "wrong-password").url.endswith("/hub/login")
        landed = _login(session, url, "alice", password)
        assert landed.status_code == 200 and landed.url == f"{url}/hub/ink", landed.url
        assert "INK Hub demo" in landed.text
        log = hub.log.read_text()
        assert password not in log
        # enable_auth_state is on: JupyterHub refuses to start without the key init made in secrets/
        assert "Encryption keys must be specified" not in log
    finally:
        hub.stop()
    # restarting on the same site directory keeps the login working (same cookie secret, db)
    hub = SiteHub(site, state).start(url, cert)
    try:
        assert session.get(f"{url}/hub/ink").url == f"{url}/hub/ink"
    finally:
        hub.stop()


@pytest.mark.hub
def test_slurm_site_starts_a_hub(tmp_path):
    site, state = tmp_path / "site", tmp_path / "state"
    port, hub_port, api_port = free_port(), free_port(), free_port()
    r = init(site, "--profile", "slurm-site", *site_args(
        tmp_path, bind_url=f"https://127.0.0.1:{port}", hub_bind_url=f"http://127.0.0.1:{hub_port}",
        hub_connect_url=f"http://127.0.0.1:{hub_port}", proxy_api_url=f"http://127.0.0.1:{api_port}",
        partition="debug", site_name="Slurm Site"))
    assert r.returncode == 0, r.stderr
    url, cert = f"https://127.0.0.1:{port}", site / "secrets" / "tls.crt"
    hub = SiteHub(site, state).start(url, cert)
    try:
        page = requests.get(f"{url}/hub/login", verify=str(cert), timeout=30)
        assert page.status_code == 200 and "Slurm Site" in page.text
        assert (state / "jupyterhub.sqlite").exists()
    finally:
        hub.stop()
    # the unit's ExecStartPre, and the upgrade procedure's database step, on this site
    unit = (site / "ink-hub.service").read_text()
    pre = re.search(r"^ExecStartPre=(.+)$", unit, re.M).group(1).split()
    checked = subprocess.run(pre, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and checked.stdout == "", checked.stderr
    upgraded = subprocess.run([str(VENV_BIN / "jupyterhub"), "upgrade-db", "-f", str(site / "jupyterhub_config.py")],
                              cwd=state, capture_output=True, text=True, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]  # an up-to-date schema: nothing to migrate


def _own_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A site's own certificate and key (as from its CA), not made by init."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "site's own certificate")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "hub.crt", directory / "hub.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.mark.hub
def test_given_tls_certificate_is_served(tmp_path):
    """tls_cert/tls_key given: init makes no certificate of its own, the site points at the
    given files, and the hub it starts serves exactly that certificate."""
    import ssl

    site, state = tmp_path / "site", tmp_path / "state"
    cert, key = _own_certificate(tmp_path / "pki")
    port, hub_port, api_port = free_port(), free_port(), free_port()
    args = site_args(tmp_path, bind_url=f"https://127.0.0.1:{port}", hub_bind_url=f"http://127.0.0.1:{hub_port}",
                     hub_connect_url=f"http://127.0.0.1:{hub_port}", proxy_api_url=f"http://127.0.0.1:{api_port}",
                     partition="debug", tls_cert=str(cert), tls_key=str(key))
    r = init(site, "--profile", "slurm-site", *args)
    assert r.returncode == 0, r.stderr
    assert not (site / "secrets" / "tls.crt").exists() and not (site / "secrets" / "tls.key").exists()
    assert "tls." not in r.stdout  # nothing about a certificate of its own
    check = subprocess.run([INK_HUB, "config", "check", "--dir", str(site)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    merged = subprocess.run([sys.executable, "-c", "import sys, json; from ink_hub.catalogue.load import load_site; "
                             "from ink_hub.site import read_layers; "
                             "print(json.dumps(load_site(read_layers(sys.argv[1])).hub_config))", str(site)],
                            capture_output=True, text=True, check=True)
    jh = json.loads(merged.stdout)["JupyterHub"]
    assert (jh["ssl_cert"], jh["ssl_key"]) == (str(cert), str(key))
    again = init(site, "--profile", "slurm-site", *args)  # idempotent with a given certificate too
    assert again.returncode == 0 and "Nothing changed" in again.stdout, again.stdout

    url = f"https://127.0.0.1:{port}"
    hub = SiteHub(site, state).start(url, cert)  # verify= the given certificate: it is what is served
    try:
        served = ssl.get_server_certificate(("127.0.0.1", port), timeout=30)
        assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(cert.read_text())
        assert requests.get(f"{url}/hub/login", verify=str(cert), timeout=30).status_code == 200
    finally:
        hub.stop()
