"""Kerberos tickets from login to a running Slurm session, against a real MIT KDC (k5test realm).

alice logs in with her Kerberos password; her session (a real Slurm job) finds a valid ticket
with ``klist``, in a 0600 credential cache of her own, and sees it renewed by the hub while it
runs. bob's principal may not renew: he is warned, in his session's log and on the INK panel.
The ticket never shows in the hub's log, the job's log, the job's record or script, process
environments or API responses, and no other user (or their session) can read it.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import stat
import subprocess
import time

import pytest
import requests
from cryptography.fernet import Fernet

from ink_hub.kerberos import TicketKeeper

from .conftest import SLURM_HUB_CONFIG, job_pids, wait_for
from .harness import Hub, ensure_unix_users

pytestmark = [pytest.mark.kdc, pytest.mark.slurm, pytest.mark.hub]

REALM = "KRBTEST.COM"
# Users of these tests only: other test runs on a shared machine cancel the jobs of alice..erin
ALICE, BOB = "kalice", "kbob"
PASSWORDS = {ALICE: "alice-krb-pw", BOB: "bob-krb-pw"}
OUTSIDER = "kcarol"
TICKET_LIFETIME = 60

CATALOGUE = """
defaults: {memory: 1G}
experiments:
  default: {title: Kerberos users, members: {users: [kalice, kbob]}, apps: [jupyter]}
hub:
  TicketKeeper: {renew_before: 50, refresh_interval: 3, warn_before: 3600}
"""


def free_portbase() -> int:
    """k5test uses ten consecutive ports from its base: find ten free ones (TCP and UDP)."""
    for _ in range(200):
        base = random.randrange(20000, 60000, 10)
        sockets = []
        try:
            for port in range(base, base + 10):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    s = socket.socket(type=kind)
                    sockets.append(s)
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no ten free ports in a row")


@pytest.fixture(scope="module")
def kdc():
    k5test = pytest.importorskip("k5test")
    realm = k5test.K5Realm(realm=REALM, portbase=free_portbase(), get_creds=False, create_host=False)
    try:
        for user, password in PASSWORDS.items():
            realm.addprinc(f"{user}@{REALM}", password)
        # bob's tickets cannot be renewed: the KDC grants him no renewable life
        realm.run_kadminl(f"modprinc -maxrenewlife 0 {BOB}@{REALM}")
        realm.addprinc(f"{OUTSIDER}@{REALM}", "outsider-krb-pw")  # a principal in no experiment
        yield realm
    finally:
        realm.stop()


@pytest.fixture(scope="module")
def krb_hub(tmp_path_factory, kdc, dev_slurm):
    ensure_unix_users(PASSWORDS)
    mp = pytest.MonkeyPatch()
    for key, value in kdc.env.items():
        mp.setenv(key, value)
    mp.setenv("JUPYTERHUB_CRYPT_KEY", Fernet.generate_key().decode())
    hub = Hub(tmp_path_factory.mktemp("krb-hub"), SLURM_HUB_CONFIG + f"""
c.JupyterHub.authenticator_class = "ink-kerberos"
c.KerberosAuthenticator.realm = {REALM!r}
c.KerberosAuthenticator.ticket_lifetime = {TICKET_LIFETIME}
c.KerberosAuthenticator.renew_lifetime = 3600
c.JupyterHub.load_roles[0]["scopes"].append("admin:auth_state")
""", backend="slurm", catalogue=CATALOGUE)
    try:
        hub.start()
        yield hub
    finally:
        for user in PASSWORDS:
            for name in list(hub.user_model(user).get("servers", {})):
                hub.api("DELETE", f"/users/{user}/servers/{name}")
        hub.stop()
        mp.undo()
        cancel_jobs_of(PASSWORDS)


def cancel_jobs_of(users) -> None:
    out = subprocess.run(["squeue", "--noheader", "--format=%i %u %j"], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        job_id, user, name = line.split(maxsplit=2)
        if user in users and name.startswith("ink-"):
            subprocess.run(["scancel", job_id])


def login(hub, user: str, password: str) -> requests.Session:
    """Log in through the hub's login form, as a browser does."""
    s = requests.Session()
    s.get(f"{hub.url}/hub/login", timeout=10)
    r = s.post(f"{hub.url}/hub/login", data={"username": user, "password": password,
                                               "_xsrf": s.cookies.get("_xsrf")},
               timeout=30, allow_redirects=False)
    s.login_status = r.status_code
    return s


def run_in_session(hub, user: str, server: str, command: str, timeout: float = 30) -> str:
    """Run a shell command in a terminal of the user's running session; return its output."""
    import websocket  # websocket-client, a test dependency

    token = hub.user_token(user)
    base = f"{hub.url}/user/{user}/{server}"
    headers = {"Authorization": f"token {token}"}
    name = requests.post(f"{base}/api/terminals", headers=headers, timeout=20).json()["name"]
    ws = websocket.create_connection(f"{base.replace('http', 'ws', 1)}/terminals/websocket/{name}",
                                     header=[f"Authorization: token {token}"], timeout=timeout)
    try:
        # the marker is split in the typed line, so only the command's own output matches it
        ws.send(json.dumps(["stdin", f"{command}; echo INK_''DONE\r"]))
        out, deadline = "", time.monotonic() + timeout
        while "INK_DONE" not in out and time.monotonic() < deadline:
            message = json.loads(ws.recv())
            if message[0] == "stdout":
                out += message[1]
        assert "INK_DONE" in out, f"no answer from the session terminal: {out!r}"
        return out
    finally:
        ws.close()
        requests.delete(f"{base}/api/terminals/{name}", headers=headers, timeout=10)


def klist_expiry(output: str) -> str:
    match = re.search(r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d\s+(\d\d/\d\d/\d\d \d\d:\d\d:\d\d)\s+krbtgt/", output)
    assert match, f"no TGT in klist output: {output!r}"
    return match.group(1)


def session_job(hub, user):
    state = hub.spawner_state(user, "jupyter")
    return state["job_id"], state["job_output"]


def server_token(job_id: str) -> str:
    """The session's own server token, read as root from its processes (as ink-session has it)."""
    for pid in job_pids(job_id):
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        for entry in env:
            if entry.startswith(b"JUPYTERHUB_API_TOKEN="):
                return entry.split(b"=", 1)[1].decode()
    raise AssertionError("no server token found in the job's processes")


def test_wrong_password_and_principal_tricks_are_refused(krb_hub):
    assert login(krb_hub, ALICE, "wrong").login_status == 403
    assert login(krb_hub, f"{ALICE}/admin", PASSWORDS[ALICE]).login_status == 403
    assert login(krb_hub, f"{ALICE}@{REALM}", PASSWORDS[ALICE]).login_status == 403
    assert PASSWORDS[ALICE] not in krb_hub.log_text()
    # the right password of a principal in no experiment: told why, not "invalid password"
    outsider = login(krb_hub, OUTSIDER, "outsider-krb-pw")
    assert outsider.login_status == 403
    page = outsider.post(f"{krb_hub.url}/hub/login", data={"username": OUTSIDER, "password": "outsider-krb-pw",
                         "_xsrf": outsider.cookies.get("_xsrf")}, timeout=30).text
    # JupyterHub shows a login error above the form: here the reason, not "invalid password"
    assert "your account is not a member of any experiment" in page.replace("&#39;", "'")
    assert "Invalid username or password" not in page


def test_session_gets_the_ticket_renewed_and_private(krb_hub, kdc, tmp_path):
    hub = krb_hub
    alice = login(hub, ALICE, PASSWORDS[ALICE])
    assert alice.login_status == 302
    hub.start_and_wait(ALICE, "jupyter")
    job_id, job_output = session_job(hub, ALICE)

    out = run_in_session(hub, ALICE, "jupyter", "klist; echo CC=$KRB5CCNAME")
    assert f"Default principal: {ALICE}@{REALM}" in out
    first_expiry = klist_expiry(out)
    path = re.search(r"CC=FILE:(\S+)", out).group(1)
    info, dir_info = os.stat(path), os.stat(os.path.dirname(path))
    alice_uid = int(subprocess.run(["id", "-u", ALICE], capture_output=True, text=True).stdout)
    assert info.st_uid == alice_uid and stat.S_IMODE(info.st_mode) == 0o600
    assert dir_info.st_uid == alice_uid and stat.S_IMODE(dir_info.st_mode) == 0o700

    # the hub renews the 60 s ticket when less than 50 s are left; the session fetches it
    wait_for(lambda: klist_expiry(run_in_session(hub, ALICE, "jupyter", "klist")) != first_expiry,
             timeout=60, interval=3, message="a renewed ticket in the session")
    assert f"Renewed the Kerberos ticket of {ALICE}" in hub.log_text()
    out = run_in_session(hub, ALICE, "jupyter", "klist -s && echo VALID")
    assert "VALID\n" in out.replace("\r", "")  # the typed line has "VALID;", the output "VALID"

    # ---- where the ticket must never be ----
    state = hub.api("GET", f"/users/{ALICE}").json()["auth_state"]["kerberos"]
    secret = state["ccache"]
    needles = [secret, secret[40:100]]
    assert all(n not in hub.log_text() for n in needles), "ticket in the hub's log"
    log_text = open(job_output, errors="replace").read()
    assert all(n not in log_text for n in needles) and "INK_KRB5_CCACHE=" not in log_text
    # (and the session's log directory is the user's alone)
    assert stat.S_IMODE(os.stat(os.path.dirname(job_output)).st_mode) & 0o077 == 0
    record = subprocess.run(["scontrol", "show", "job", "-dd", job_id], capture_output=True, text=True).stdout
    script = subprocess.run(["scontrol", "write", "batch_script", job_id, "-"], capture_output=True,
                            text=True).stdout
    assert record and all(n not in record for n in needles) and "INK_KRB5" not in record
    assert script and all(n not in script for n in needles) and "INK_KRB5_CCACHE" not in script
    for pid in job_pids(job_id):
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read()
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        assert b"INK_KRB5_CCACHE" not in environ, f"ticket in the environment of pid {pid}"
        assert secret[40:100].encode() not in cmdline

    # the user's own API token, a browser cookie, or nothing: no ticket from the hub
    own = {"Authorization": f"token {hub.user_token(ALICE)}"}
    assert "kerberos" not in json.dumps(requests.get(f"{hub.api_url}/users/{ALICE}", headers=own, timeout=10).json())
    assert requests.get(f"{hub.api_url}/ink/credentials", headers=own, timeout=10).status_code == 403
    assert requests.get(f"{hub.api_url}/ink/credentials", timeout=10).status_code == 403
    assert alice.get(f"{hub.api_url}/ink/credentials", timeout=10).status_code == 403
    # the session's own token does get it (that is how the session refreshes)
    r = requests.get(f"{hub.api_url}/ink/credentials",
                     headers={"Authorization": f"token {server_token(job_id)}"}, timeout=10)
    assert r.status_code == 200 and r.json()["principal"] == f"{ALICE}@{REALM}"
    assert r.headers["Cache-Control"] == "no-store"

    # ---- another user and their session ----
    bob = login(hub, BOB, PASSWORDS[BOB])
    assert bob.login_status == 302
    denied = subprocess.run(["runuser", "-u", BOB, "--", "cat", path], capture_output=True)
    assert denied.returncode != 0 and b"Permission denied" in denied.stderr
    hub.start_and_wait(BOB, "jupyter")
    bob_job, bob_output = session_job(hub, BOB)
    out = run_in_session(hub, BOB, "jupyter", f"klist; cat {path}")
    assert f"Default principal: {BOB}@{REALM}" in out and "Permission denied" in out
    r = requests.get(f"{hub.api_url}/ink/credentials",
                     headers={"Authorization": f"token {server_token(bob_job)}"}, timeout=10)
    assert r.json()["principal"] == f"{BOB}@{REALM}" and secret not in r.text

    # ---- bob's ticket cannot be renewed: he is told, in his session's log and on the panel ----
    assert r.json()["warning"] and "cannot be renewed" in r.json()["warning"]
    wait_for(lambda: "cannot be renewed" in open(bob_output, errors="replace").read(), timeout=30,
             message="the warning in bob's session log")
    panel = bob.get(f"{hub.url}/hub/ink", timeout=20).text
    assert 'id="ink-credential-warning"' in panel and "cannot be renewed" in panel
    assert 'id="ink-credential-warning"' not in alice.get(f"{hub.url}/hub/ink", timeout=20).text

    hub.stop_server(BOB, "jupyter")
    hub.stop_server(ALICE, "jupyter")
    # the session's private directory goes with it
    wait_for(lambda: not os.path.exists(os.path.dirname(path)), timeout=30,
             message="ccache directory removed at the end of the session")


async def test_concurrent_sessions_of_one_user_renew_once(kdc, monkeypatch):
    """Five sessions asking at once make one renewal at the real KDC, and all get its ticket."""
    import asyncio

    from ink_hub import kerberos

    for key, value in kdc.env.items():
        monkeypatch.setenv(key, value)
    ticket = await asyncio.to_thread(kerberos.kinit_password, f"{ALICE}@{REALM}", PASSWORDS[ALICE],
                                     lifetime=60, renew_lifetime=3600)

    class User:  # the two auth_state methods of jupyterhub.user.User the keeper uses
        name = ALICE
        state = {"kerberos": ticket.to_state()}

        async def get_auth_state(self):
            return dict(self.state)

        async def save_auth_state(self, state):
            self.state = state

    renewals = []
    real_renew = kerberos.renew
    monkeypatch.setattr(kerberos, "renew", lambda t: renewals.append(t) or real_renew(t))
    await asyncio.sleep(1.5)  # 58.5 s left: below renew_before
    keeper = TicketKeeper(renew_before=59)
    user = User()
    tickets = await asyncio.gather(*[keeper.fresh_ticket(user) for _ in range(5)])
    assert len(renewals) == 1
    assert len({t.ccache for t in tickets}) == 1 and tickets[0].expires > ticket.expires
    assert kerberos.Ticket.from_state(user.state["kerberos"]) == tickets[0]
