"""SSH into a Slurm session from a "laptop" through the hub (Enode), with the real OpenSSH client.

Everything is real: JupyterHub + CHP, the dev Slurm, the session's jupyter-server with INK's
``/ink/ssh`` websocket, Debian's sshd run as the user (``sshd -i`` per connection), the ``ink``
client as ssh's ProxyCommand, ssh/scp/rsync from openssh-client and rsync. The "laptop" is
root on this machine with its own ``INK_CONFIG`` directory, as a laptop user would be.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import requests

from .conftest import SLURM_HUB_CONFIG, UI_TIMEOUT, job_pids, squeue_active, wait_for
from .harness import VENV_BIN, ensure_unix_users, free_port

pytestmark = [pytest.mark.slurm, pytest.mark.hub, pytest.mark.sshd]

CATALOGUE = """
site: {name: INK Enode Test}
defaults: {memory: 1G}
experiments:
  default:
    title: Everyone
    members: {everyone: true}
    apps: [jupyter, enode]
"""
INK = str(VENV_BIN / "ink")
TEST_DIR = "ink-enode-test"
#: the session's user: one of its own, because other test modules' clean-up cancels every job of
#: the shared test users (alice ... erin) on the shared dev Slurm
USER = "inkenode"


def _installed() -> list[str]:
    return [p for p in ("/usr/sbin/sshd", "ssh", "scp", "rsync", "ssh-keygen")
            if not (os.path.exists(p) if p.startswith("/") else shutil.which(p))]


@pytest.fixture(scope="module")
def hub(tmp_path_factory, unix_users, dev_slurm):
    missing = _installed()
    assert not missing, f"not installed: {', '.join(missing)} (scripts/install installs them)"
    from .harness import Hub

    ensure_unix_users([USER])
    h = Hub(tmp_path_factory.mktemp("enode"), SLURM_HUB_CONFIG + f"c.Authenticator.allowed_users.add({USER!r})\n",
            backend="slurm", catalogue=CATALOGUE).start()
    yield h
    for user in (USER, "bob"):
        for name in list(h.user_model(user).get("servers", {})):
            try:
                h.stop_server(user, name)
            except (RuntimeError, TimeoutError):
                pass
    h.stop()


class Laptop:
    """A client machine's view: an ``ink`` login (0600 file) and ``ink ssh-config``'s files."""

    def __init__(self, hub, user: str, directory: Path):
        self.hub, self.user, self.dir = hub, user, directory
        self.env = dict(os.environ, INK_CONFIG=str(directory / "config.json"),
                        PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        self.token = hub.user_token(user)
        self.ink("login", "--hub", hub.url, "--token", self.token)
        self.ssh_config_output = self.ink("ssh-config").stdout
        self.config = directory / "ssh" / "config"

    def ink(self, *args, check=True) -> subprocess.CompletedProcess:
        r = subprocess.run([INK, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    def ssh(self, *args, config: Path | None = None, timeout=120, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", "-F", str(config or self.config), "-o", "BatchMode=yes", *args],
                              env=self.env, capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def session(hub):
    if hub.server(USER, "enode") is None:  # the browser test may have started it from its tile
        hub.start_and_wait(USER, "enode", timeout=300)
    hub.wait_ready(USER, "enode", timeout=300)
    yield hub.spawner_state(USER, "enode")


@pytest.fixture(scope="module")
def laptop(hub, session, tmp_path_factory):
    return Laptop(hub, USER, tmp_path_factory.mktemp("laptop"))


def session_sshd_pids(job_id: str) -> list[int]:
    """sshd processes of the session's Slurm job (sshd retitles itself "sshd: USER@notty")."""
    pids = []
    for pid in job_pids(job_id):
        try:
            argv0 = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0]
        except OSError:
            continue
        if argv0.endswith(b"/sshd") or argv0.startswith(b"sshd:"):
            pids.append(pid)
    return pids


def listening_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    inodes.add(fields[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    found = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            m = re.match(r"socket:\[(\d+)\]", target)
            if m:
                found.add(m.group(1))
    except OSError:
        pass
    return found


# ---- the way in ---------------------------------------------------------------------------------

@pytest.mark.browser
def test_enode_tile_opens_a_web_terminal_in_the_job(browser, hub, tmp_path):
    """The tile on the INK panel starts the Enode session and lands on its web terminal, whose
    shell runs in the Slurm job (the user guide's screenshot)."""
    from .test_browser_pages import login, shot, wait_for_terminal

    page = login(browser, hub, USER)
    tile = page.locator(".ink-tile[data-app=enode]")
    assert "SSH in from your laptop" in tile.inner_text()
    page.click(".ink-tile[data-app=enode] .ink-start")
    page.wait_for_url(f"**/user/{USER}/enode/ink/shell**", timeout=3 * UI_TIMEOUT)  # an Enode starts slowly
    page.wait_for_selector("#ink-status:has-text('connected')", timeout=UI_TIMEOUT)
    job_id = hub.spawner_state(USER, "enode")["job_id"]
    page.locator("#ink-terminal").click()
    page.keyboard.type("echo enode-on-$(hostname)-job-$SLURM_JOB_ID-cpus-$SLURM_CPUS_ON_NODE")
    page.keyboard.press("Enter")
    wait_for_terminal(page, "lines.some(l => l.startsWith(arg))", arg=f"enode-on-", timeout=UI_TIMEOUT)
    wait_for_terminal(page, "lines.some(l => l.includes(arg))", arg=f"-job-{job_id}-cpus-4", timeout=UI_TIMEOUT)
    shot(page, tmp_path, "enode.png")
    page.context.close()


def test_ssh_config_writes_private_files_and_no_token(laptop):
    d = laptop.dir / "ssh"
    assert d.stat().st_mode & 0o077 == 0
    for name in ("config", "known_hosts", "id_ed25519", "id_ed25519-cert.pub"):
        assert (d / name).stat().st_mode & 0o077 == 0, name
    text = laptop.config.read_text()
    assert "Host ink-enode" in text and "StrictHostKeyChecking yes" in text
    assert laptop.token not in text and laptop.token not in laptop.ssh_config_output
    known = (d / "known_hosts").read_text()
    assert known.startswith(f"@cert-authority *.{USER}.ink-session ssh-ed25519 ")
    # the certificate is the user's, short-lived, for the laptop's own key
    info = subprocess.run(["ssh-keygen", "-L", "-f", str(d / "id_ed25519-cert.pub")],
                          capture_output=True, text=True, check=True).stdout
    assert re.search(rf"Principals:\s*\n\s*{USER}\s*\n", info), info
    pub = (d / "id_ed25519.pub").read_text().split()[1]
    cert_key = subprocess.run(["ssh-keygen", "-L", "-f", str(d / "id_ed25519-cert.pub")],
                              capture_output=True, text=True).stdout
    assert "Type: ssh-ed25519-cert-v01@openssh.com user certificate" in cert_key
    assert pub not in (laptop.hub.log_text())


def test_ssh_runs_a_command_as_the_user_in_the_job(laptop, session):
    r = laptop.ssh("ink-enode", "whoami; echo job=$SLURM_JOB_ID; echo exp=$INK_EXPERIMENT; "
                   "env | grep -c -E 'JUPYTERHUB_API_TOKEN|JPY_API_TOKEN|INK_SHARE_KEY' || true")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0] == USER
    assert lines[1] == f"job={session['job_id']}"  # the session's environment, in its job
    assert lines[2] == "exp=default"
    assert lines[3] == "0"  # but not its credentials


def test_a_new_certificate_is_minted_for_each_connection(laptop):
    cert = laptop.dir / "ssh" / "id_ed25519-cert.pub"
    cert.unlink()  # ssh reads the certificate after the ProxyCommand has written a fresh one
    r = laptop.ssh("ink-enode", "true")
    assert r.returncode == 0, r.stderr
    assert cert.exists()


def test_scp_and_rsync_100_mib(laptop, tmp_path):
    data = os.urandom(100 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    assert laptop.ssh("ink-enode", f"rm -rf ~/{TEST_DIR} && mkdir ~/{TEST_DIR}").returncode == 0
    try:
        scp = ["scp", "-F", str(laptop.config), "-o", "BatchMode=yes"]
        r = subprocess.run([*scp, str(local), f"ink-enode:{TEST_DIR}/scp.bin"], env=laptop.env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        remote = laptop.ssh("ink-enode", f"sha256sum ~/{TEST_DIR}/scp.bin; stat -c %U ~/{TEST_DIR}/scp.bin")
        assert remote.stdout.split()[0] == digest and remote.stdout.split()[-1] == USER
        back = tmp_path / "back.bin"
        r = subprocess.run([*scp, f"ink-enode:{TEST_DIR}/scp.bin", str(back)], env=laptop.env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        assert hashlib.sha256(back.read_bytes()).hexdigest() == digest

        rsh = f"ssh -F {laptop.config} -o BatchMode=yes"
        r = subprocess.run(["rsync", "-a", "-e", rsh, str(local), f"ink-enode:{TEST_DIR}/rsync.bin"],
                           env=laptop.env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        remote = laptop.ssh("ink-enode", f"sha256sum ~/{TEST_DIR}/rsync.bin")
        assert remote.stdout.split()[0] == digest
        rback = tmp_path / "rback.bin"
        r = subprocess.run(["rsync", "-a", "-e", rsh, f"ink-enode:{TEST_DIR}/rsync.bin", str(rback)],
                           env=laptop.env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        assert hashlib.sha256(rback.read_bytes()).hexdigest() == digest
    finally:
        laptop.ssh("ink-enode", f"rm -rf ~/{TEST_DIR}")


def test_local_port_forward_reaches_a_server_in_the_session(laptop):
    remote_port, local_port = free_port(), free_port()
    marker = f"served-in-the-session-{os.getpid()}"
    server = subprocess.Popen(
        ["ssh", "-F", str(laptop.config), "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
         "-L", f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}", "ink-enode",
         f"mkdir -p ~/{TEST_DIR}-www && echo {marker} > ~/{TEST_DIR}-www/index.html && "
         f"exec python3 -m http.server {remote_port} --bind 127.0.0.1 --directory ~/{TEST_DIR}-www"],
        env=laptop.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def fetch():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{local_port}/", timeout=5) as r:
                    return r.read().decode()
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                return None
        body = wait_for(fetch, timeout=60, interval=0.2, message="the forwarded server")
        assert marker in body
    finally:
        server.terminate()
        server.wait(30)
        laptop.ssh("ink-enode", f"rm -rf ~/{TEST_DIR}-www")


def test_remote_forward_is_refused(laptop):
    """``-R`` would make sshd listen on the node: only local forwarding is allowed."""
    r = laptop.ssh("-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22", "ink-enode", "true")
    assert r.returncode != 0
    assert "remote port forwarding failed" in r.stderr.lower() or "forward" in r.stderr.lower()


def test_nothing_listens_on_tcp_for_the_sessions_sshd(laptop, session):
    """With a connection open, the session's sshd processes hold no listening TCP socket."""
    proc = subprocess.Popen(["ssh", "-F", str(laptop.config), "-o", "BatchMode=yes", "ink-enode",
                             "echo connected; sleep 60"], env=laptop.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "connected"
        pids = wait_for(lambda: session_sshd_pids(session["job_id"]), timeout=30, message="the session's sshd")
        assert len(pids) >= 2  # sshd -i and its logged-in child
        listening = listening_inodes()
        for pid in pids:
            assert not (socket_inodes(pid) & listening), f"sshd {pid} listens on TCP"
        # and the session's config has no listener of any kind
        config = next(p for p in Path("/tmp").glob("ink-session-*/ink-sshd-*/sshd_config")
                      if p.stat().st_uid == pwd.getpwnam(USER).pw_uid)
        text = config.read_text()
        assert "ListenAddress" not in text and "AllowTcpForwarding local" in text
        assert config.parent.stat().st_mode & 0o077 == 0
        assert (config.parent / "host_ed25519").stat().st_mode & 0o077 == 0
    finally:
        proc.terminate()
        proc.wait(30)


# ---- refused ------------------------------------------------------------------------------------

def _attack_config(laptop, tmp_path: Path, key: str, cert: str, known_hosts: Path | None = None,
                   alias: str | None = None) -> Path:
    """An ssh config like ink's, but with another key/certificate (and known_hosts or alias)."""
    (tmp_path / "id").write_text(key)
    (tmp_path / "id-cert.pub").write_text(cert)
    os.chmod(tmp_path / "id", 0o600)
    text = laptop.config.read_text()
    text = re.sub(r"IdentityFile .*", f"IdentityFile {tmp_path}/id", text)
    text = re.sub(r"CertificateFile .*", f"CertificateFile {tmp_path}/id-cert.pub", text)
    if known_hosts:
        text = re.sub(r"UserKnownHostsFile .*", f"UserKnownHostsFile {known_hosts}", text)
    if alias:
        text = re.sub(r"HostKeyAlias .*", f"HostKeyAlias {alias}", text)
    path = tmp_path / "config"
    path.write_text(text)
    return path


def _public_key(private_pem: str):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_ssh_private_key(private_pem.encode(), password=None).public_key()


def hub_user_ca(hub):
    from ink_hub.ssh_ca import SSHCertificateAuthority

    return SSHCertificateAuthority(key_file=str(hub.workdir / "ink-ssh-user-ca"))


def test_certificate_of_another_user_is_refused(laptop, hub, tmp_path):
    key, cert = hub_user_ca(hub).mint("bob")  # the laptop somehow holds bob's key and certificate
    config = _attack_config(laptop, tmp_path, key, cert)
    r = laptop.ssh("ink-enode", "whoami", config=config)
    assert r.returncode != 0 and USER not in r.stdout
    assert "Permission denied" in r.stderr


def test_expired_certificate_is_refused(laptop, hub, tmp_path):
    key, cert = hub_user_ca(hub).mint(USER, validity_seconds=1)
    time.sleep(2)
    config = _attack_config(laptop, tmp_path, key, cert)
    r = laptop.ssh("ink-enode", "whoami", config=config)
    assert r.returncode != 0 and USER not in r.stdout
    assert "Permission denied" in r.stderr
    # the same key with a fresh certificate gets in: it was the expiry that was refused
    fresh = _attack_config(laptop, tmp_path, key, hub_user_ca(hub).certify(
        _public_key(key), USER, 600)[0])
    assert laptop.ssh("ink-enode", "whoami", config=fresh).stdout.strip() == USER


def test_certificate_from_another_ca_is_refused(laptop, tmp_path):
    from ink_hub.ssh_ca import SSHCertificateAuthority

    key, cert = SSHCertificateAuthority(key_file=str(tmp_path / "other-ca")).mint(USER)
    r = laptop.ssh("ink-enode", "whoami", config=_attack_config(laptop, tmp_path, key, cert))
    assert r.returncode != 0 and USER not in r.stdout


def test_host_is_checked_not_trusted_on_first_use(laptop, hub, tmp_path):
    """The laptop trusts only the hub's host CA, and only for the session's own name."""
    from ink_hub.ssh_ca import SSHCertificateAuthority

    key, cert = hub_user_ca(hub).mint(USER)
    assert laptop.ssh("ink-enode", "whoami", config=_attack_config(laptop, tmp_path, key, cert)).returncode == 0
    other = SSHCertificateAuthority(key_file=str(tmp_path / "other-host-ca")).public_key_line()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"@cert-authority *.{USER}.ink-session {other}\n")
    r = laptop.ssh("ink-enode", "whoami", config=_attack_config(laptop, tmp_path, key, cert, known_hosts=wrong))
    assert r.returncode != 0 and "Host key verification failed" in r.stderr
    # the session's certificate names its own session: as another session's host it is refused
    r = laptop.ssh("ink-enode", "whoami",
                   config=_attack_config(laptop, tmp_path, key, cert, alias=f"jupyter.{USER}.ink-session"))
    assert r.returncode != 0 and "Host key verification failed" in r.stderr


def _websocket_status(hub, path: str, token: str | None) -> int:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        with connect(f"ws://127.0.0.1:{hub.port}{path}", additional_headers=headers, open_timeout=30):
            return 101
    except InvalidStatus as e:
        return e.response.status_code


def test_another_users_token_on_the_websocket_is_refused(hub, session, laptop):
    path = f"/user/{USER}/enode/ink/ssh"
    bob = hub.user_token("bob")
    assert _websocket_status(hub, path, bob) == 403
    assert _websocket_status(hub, path, None) in (302, 403)
    assert _websocket_status(hub, path, "0" * 32) in (302, 403)
    # bob's ink cannot be pointed at the session either: it only ever dials bob's own
    bob_laptop_env = dict(laptop.env, INK_CONFIG="/nonexistent", INK_HUB_URL=hub.url, INK_TOKEN=bob)
    r = subprocess.run([INK, "ssh", "enode"], env=bob_laptop_env, capture_output=True, text=True,
                       input="", timeout=60)
    assert r.returncode != 0 and "enode is not running" in r.stderr
    # and the user's own token gets the SSH banner
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{hub.port}{path}", additional_headers={"Authorization": f"token {laptop.token}"},
                 open_timeout=30) as ws:
        assert ws.recv(timeout=30).startswith(b"SSH-2.0-OpenSSH")


def test_token_in_the_url_is_refused(hub, session, laptop):
    """``?token=`` would end up in proxy and server logs: the SSH websocket refuses it (even with
    the browser's ``Sec-Fetch-Mode: websocket``, for which JupyterHub would otherwise accept a
    URL token), ink never sends it, and no log shows the token."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{hub.port}/user/{USER}/enode/ink/ssh?token={laptop.token}"
    for extra in ({}, {"Sec-Fetch-Mode": "websocket"}):
        with pytest.raises(InvalidStatus) as refused:
            with connect(url, additional_headers=extra, open_timeout=30) as ws:
                ws.recv(timeout=10)  # an SSH banner here would mean the URL token was accepted
        assert refused.value.response.status_code == 400, (extra, refused.value.response)
        assert b"Authorization header" in refused.value.response.body
    # the same token in the header is accepted, so the refusal above is about the URL alone
    assert _websocket_status(hub, f"/user/{USER}/enode/ink/ssh", laptop.token) == 101
    assert "token=" not in (laptop.dir / "ssh" / "config").read_text()
    session_log = Path(hub.spawner_state(USER, "enode")["job_output"]).read_text()
    assert "/ink/ssh" in session_log  # the refused requests are logged ...
    assert laptop.token not in hub.log_text() and laptop.token not in session_log  # ... without the token


def test_certificate_api_refuses_bad_input(hub, laptop):
    api = f"{hub.url}/hub/api/ink/ssh/user-certificate"
    h = {"Authorization": f"token {laptop.token}"}
    for body, field in (({"public_key": "ssh-ed25519 not-base64!"}, "public_key"),
                        ({"public_key": (laptop.dir / "ssh" / "id_ed25519-cert.pub").read_text()}, "public_key"),
                        ({}, "public_key"), ({"public_key": "x", "principal": "root"}, "principal"),
                        ({"public_key": (laptop.dir / "ssh" / "id_ed25519.pub").read_text(),
                          "valid_seconds": 10**9}, "valid_seconds")):
        r = requests.post(api, json=body, headers=h, timeout=30)
        assert r.status_code == 400 and field in r.json()["message"], (body, r.text)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    r = requests.post(api, json={"public_key": weak}, headers=h, timeout=30)
    assert r.status_code == 400 and "too weak" in r.json()["message"]
    # a token without the scope
    r = hub.api("POST", f"/users/{USER}/tokens", json={"scopes": [f"read:users!user={USER}"], "expires_in": 600})
    narrow = r.json()["token"]
    r = requests.post(api, json={"public_key": (laptop.dir / "ssh" / "id_ed25519.pub").read_text()},
                      headers={"Authorization": f"token {narrow}"}, timeout=30)
    assert r.status_code == 403 and "custom:ink:ssh" in r.json()["message"]
    # a user's token cannot get a host certificate: only a session's own server token can
    r = requests.post(f"{hub.url}/hub/api/ink/ssh/host-certificate",
                      json={"public_key": (laptop.dir / "ssh" / "id_ed25519.pub").read_text()},
                      headers=h, timeout=30)
    assert r.status_code == 403


# ---- the app ------------------------------------------------------------------------------------

def test_enode_gets_its_catalogue_defaults(session):
    """The catalogue's enode entry asks for 4 cores: the job has them (within the limits)."""
    out = subprocess.run(["squeue", "--noheader", "-j", session["job_id"], "-o", "%C"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "4"


def test_background_process_outlives_its_connection_inside_the_job(laptop, session):
    """``nohup ... &`` over SSH keeps running after the connection (as on a login node, and as
    VS Code Remote-SSH's server needs), and stays in the batch job, which ends it with the session."""
    r = laptop.ssh("ink-enode", "nohup sleep 4242 >/dev/null 2>&1 & echo started")
    assert r.returncode == 0 and "started" in r.stdout, r.stderr

    def sleeper():
        for pid in job_pids(session["job_id"]):
            try:
                if open(f"/proc/{pid}/cmdline", "rb").read() == b"sleep\x004242\x00":
                    return pid
            except OSError:
                continue
        return None
    assert wait_for(sleeper, timeout=30, message="the background sleep in the job's processes")


def test_stop_leaves_no_sshd_and_no_host_key(hub, laptop, session):
    proc = subprocess.Popen(["ssh", "-F", str(laptop.config), "-o", "BatchMode=yes", "ink-enode",
                             "echo connected; sleep 300"], env=laptop.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "connected"
    uid = pwd.getpwnam(USER).pw_uid
    dirs = [p for p in Path("/tmp").glob("ink-session-*/ink-sshd-*") if p.stat().st_uid == uid]
    assert dirs
    hub.stop_server(USER, "enode", timeout=120)
    wait_for(lambda: session["job_id"] not in squeue_active(USER), timeout=60, message="job gone")
    proc.wait(60)  # the open connection ended with the session

    def processes_of_user():
        uid, found = pwd.getpwnam(USER).pw_uid, []
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.append(open(f"/proc/{entry}/cmdline", "rb").read())
            except OSError:
                continue
        return found
    # the user is this module's own: nothing of theirs, sshd or login shell, is left on the node
    wait_for(lambda: not processes_of_user(), timeout=30, message="no process of the user")
    wait_for(lambda: not any(d.exists() for d in dirs), timeout=30, message="host key removed")
    r = subprocess.run(["ssh", "-F", str(laptop.config), "-o", "BatchMode=yes", "ink-enode", "true"],
                       env=laptop.env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "enode is not running" in r.stderr
