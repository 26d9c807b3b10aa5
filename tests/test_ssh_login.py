"""EShell's password-free SSH: the hub's CA, a real sshd (Debian openssh-server) on loopback as
the login node, certificates bound to the user's principal and short-lived."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from ink_hub.ssh_ca import SSHCertificateAuthority

from .conftest import PatientBrowser, UI_TIMEOUT
from .harness import free_port

pytestmark = pytest.mark.sshd


@pytest.fixture(scope="module")
def login_node(unix_users):
    if not os.path.exists("/usr/sbin/sshd"):
        pytest.fail("openssh-server is not installed (scripts/install installs it)")
    d = tempfile.mkdtemp(prefix="ink-sshd-")
    os.chmod(d, 0o755)
    ca = SSHCertificateAuthority(key_file=os.path.join(d, "ca"))
    with open(os.path.join(d, "ca.pub"), "w") as f:
        f.write(ca.public_key_line() + "\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, "host")], check=True)
    port = free_port()
    with open(os.path.join(d, "sshd_config"), "w") as f:
        f.write(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host
TrustedUserCAKeys {d}/ca.pub
AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile {d}/sshd.pid
LogLevel VERBOSE
""")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    # useradd leaves accounts locked ('!'), which sshd without PAM refuses outright; '*' means
    # "no password" without locking, as for accounts that log in with keys only
    for user in ("alice", "bob"):
        subprocess.run(["usermod", "-p", "*", user], check=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", os.path.join(d, "sshd_config")],
                            stderr=open(os.path.join(d, "sshd.log"), "wb"))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    host_key = open(os.path.join(d, "host.pub")).read().split()[:2]
    yield {"port": port, "ca": ca, "dir": d, "host_key": " ".join(host_key)}
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(d, ignore_errors=True)


def ssh_as(user: str, key: str, cert: str, login: str, port: int) -> subprocess.CompletedProcess:
    """Run ssh as ``user`` with a key and certificate in a private directory of theirs."""
    entry = pwd.getpwnam(user)
    d = tempfile.mkdtemp(prefix="ink-ssh-client-")
    os.chown(d, entry.pw_uid, entry.pw_gid)
    for name, text in (("id", key), ("id-cert.pub", cert)):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    try:
        return subprocess.run(
            ["/usr/sbin/runuser", "-u", user, "--", "ssh", "-i", f"{d}/id", "-o", f"CertificateFile={d}/id-cert.pub",
             "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-p", str(port), "-l", login, "127.0.0.1", "whoami"],
            capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(d)


def test_fresh_certificate_logs_in_without_a_password(login_node):
    key, cert = login_node["ca"].mint("alice")
    r = ssh_as("alice", key, cert, "alice", login_node["port"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "alice"


def test_expired_certificate_is_refused(login_node):
    key, cert = login_node["ca"].mint("alice", validity_seconds=1)
    time.sleep(2)
    r = ssh_as("alice", key, cert, "alice", login_node["port"])
    assert r.returncode != 0 and "alice" not in r.stdout


def test_certificate_of_another_user_is_refused(login_node):
    key, cert = login_node["ca"].mint("bob")  # alice somehow holds bob's key and certificate
    r = ssh_as("alice", key, cert, "alice", login_node["port"])
    assert r.returncode != 0 and r.stdout.strip() != "alice"


def test_certificate_from_another_ca_is_refused(login_node, tmp_path):
    other = SSHCertificateAuthority(key_file=str(tmp_path / "other-ca"))
    key, cert = other.mint("alice")
    r = ssh_as("alice", key, cert, "alice", login_node["port"])
    assert r.returncode != 0


def test_ca_key_is_private_and_a_readable_one_is_refused(tmp_path):
    ca = SSHCertificateAuthority(key_file=str(tmp_path / "ca"))
    ca.ca_key()
    assert os.stat(tmp_path / "ca").st_mode & 0o077 == 0
    os.chmod(tmp_path / "ca", 0o644)
    with pytest.raises(PermissionError):
        SSHCertificateAuthority(key_file=str(tmp_path / "ca")).ca_key()


def test_eshell_opens_the_login_node_without_a_password(login_node, hub_factory, unix_users):
    """The whole path: the hub mints a certificate into alice's portal session at start, and
    EShell's "Open on login1" runs ssh with it, in real Chromium."""
    from .conftest import BROWSER_ARGS, CHROMIUM
    from .test_browser_pages import login, wait_for_terminal

    hub = hub_factory(catalogue=f"""
site:
  login_nodes:
    login1: {{title: Login node 1, host: 127.0.0.1, port: {login_node['port']}, host_key: "{login_node['host_key']}"}}
experiments:
  default: {{title: Everyone, members: {{everyone: true}}, apps: [jupyter, portal]}}
hub:
  SSHCertificateAuthority: {{key_file: "{login_node['dir']}/ca"}}
""")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = PatientBrowser(p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True))
        page = login(browser, hub, "alice")
        page.click("#ink-service-eshell")
        page.wait_for_selector("#ink-status:has-text('connected')", timeout=60_000)
        page.select_option("#ink-node", "login1")
        page.wait_for_url("**/ink/shell?node=login1")
        page.wait_for_selector("#ink-status:has-text('connected')", timeout=UI_TIMEOUT)
        # a new tab on the login node; the shell on the portal host stays open in its own tab
        assert [t["node"] for t in page.evaluate("window.inkShell.tabs()")] == ["", "login1"]
        # sshd's banner: logged in with the certificate, no password asked
        wait_for_terminal(page, "lines.some(l => l.includes('Debian GNU/Linux'))", timeout=UI_TIMEOUT)
        page.locator("#ink-terminal").click()
        page.keyboard.type("echo on-$(whoami)-at-login")
        page.keyboard.press("Enter")
        wait_for_terminal(page, "lines.some(l => l.includes('on-alice-at-login') && !l.includes('whoami'))",
                          timeout=UI_TIMEOUT)
        browser.close()
    # the credentials are private files of alice, and not in the server's environment
    home = pwd.getpwnam("alice").pw_dir
    ssh_dir = os.path.join(home, ".ink", "ssh")
    assert os.stat(ssh_dir).st_mode & 0o077 == 0
    for name in ("id_ink", "id_ink-cert.pub", "known_hosts"):
        st = os.stat(os.path.join(ssh_dir, name))
        assert st.st_mode & 0o077 == 0 and st.st_uid == pwd.getpwnam("alice").pw_uid
    pid = int(hub.spawner_state("alice", "portal")["job_id"].split(".")[0])
    environ = b""
    for child in [pid] + [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]:
        with open(f"/proc/{child}/environ", "rb") as f:
            environ += f.read()
    assert b"INK_SSH_KEY" not in environ and b"PRIVATE KEY" not in environ
    assert b"PRIVATE KEY" not in open(hub.log_path, "rb").read()
    hub.stop_server("alice", "portal")
