"""Enode SSH: connect time and scp throughput through the hub, against plain ssh to loopback.

    .venv/bin/python benchmarks/enode_ssh.py [--connects 10] [--mib 256] [--rounds 3] [--user inkbench]

One real hub (CHP) on the dev Slurm; an ``enode`` session as ``--user``; ``ink ssh-config``
as a laptop would run it. Then, in the same run:

- **connect**: ``ssh ink-enode true`` after the session is up — the whole path a user waits
  for: ssh reads its config (the ``Match exec`` renews the certificate at the hub), the
  ProxyCommand opens the websocket through CHP to the session, a new ``sshd -i`` starts, SSH
  key exchange, certificate login, the command, exit. The first connection (which also makes
  the session's host key and has the hub sign it) is reported on its own; ``connect_s`` is the
  median of the others.
- **scp**: a ``--mib`` MiB file up and down through the hub, and the same with plain ssh to a
  user-level sshd listening on loopback (the same OpenSSH, keys and defaults, no hub, no
  websocket), alternating, ``--rounds`` times. Files live in /dev/shm so disks do not count.
  ``scp_mib_s`` is the through-the-hub median (both directions), ``ratio`` = that / the
  loopback median.

Last line: ``RESULT enode connect_s=<s> scp_mib_s=<x> ratio=<r>`` (targets: connect <= 1 s,
ratio >= 0.5).
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import _common as C  # noqa: I001  (puts tests/ and the repo on sys.path)

CATALOGUE = """
site: {name: INK Enode Benchmark}
defaults: {memory: 1G}
experiments:
  default: {title: Everyone, members: {everyone: true}, apps: [enode]}
"""


def run(argv, env, timeout=600) -> float:
    t0 = time.monotonic()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}...: exit {r.returncode}: {r.stderr.strip()[-400:]}")
    return time.monotonic() - t0


def loopback_sshd(user: str, workdir: str, key_dir: str, user_ca_pub: str):
    """A plain user-level sshd on 127.0.0.1 (the baseline): same binary, the same CA login."""
    entry = pwd.getpwnam(user)
    d = tempfile.mkdtemp(prefix="ink-bench-sshd-", dir=workdir)
    os.chown(d, entry.pw_uid, entry.pw_gid)
    os.chmod(d, 0o700)
    subprocess.run(["runuser", "-u", user, "--", "ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                    "-f", f"{d}/host"], check=True)
    port = harness_free_port()
    with open(f"{d}/user_ca.pub", "w") as f:
        f.write(user_ca_pub + "\n")
    with open(f"{d}/principals", "w") as f:
        f.write(user + "\n")
    with open(f"{d}/sshd_config", "w") as f:
        f.write(f"""ListenAddress 127.0.0.1
Port {port}
HostKey {d}/host
TrustedUserCAKeys {d}/user_ca.pub
AuthorizedPrincipalsFile {d}/principals
AuthorizedKeysFile none
AllowUsers {user}
UsePAM no
StrictModes no
PidFile none
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel ERROR
""")
    for name in os.listdir(d):
        os.chown(f"{d}/{name}", entry.pw_uid, entry.pw_gid)
    proc = subprocess.Popen(["runuser", "-u", user, "--", "/usr/sbin/sshd", "-D", "-e", "-f", f"{d}/sshd_config"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    host_pub = open(f"{d}/host.pub").read().split()
    known = f"{key_dir}/loopback_known_hosts"
    with open(known, "w") as f:
        f.write(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    return proc, port, known


def harness_free_port() -> int:
    return C.harness.free_port()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=10)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--user", default="inkbench", help="Unix user of the session (created if "
                        "missing); not a test user, whose jobs test clean-ups cancel")
    parser.add_argument("--budget", type=int, default=900)
    args = parser.parse_args()
    C.check_slurm()
    C.bound_runtime(args.budget)
    harness = C.harness
    harness.ensure_unix_users([args.user])
    tag = C.run_tag()
    hub_id = f"bench-{tag}"
    tracker = C.JobTracker(ink_hub_id=hub_id)
    workdir = C.make_workdir("ink-enode-ssh-")
    hub = harness.Hub(workdir / "hub", extra_config=f"""
c.SlurmBackend.poll_interval = 2
c.SlurmBackend.spawn_poll_interval = 0.5
c.InkSpawner.poll_interval = 2
c.InkSpawner.hub_id = {hub_id!r}
c.JupyterHub.log_level = "INFO"
c.Authenticator.allowed_users = {{{args.user!r}}}
""", backend="slurm", catalogue=CATALOGUE)
    laptop = tempfile.mkdtemp(prefix="laptop-", dir=workdir)
    env = dict(os.environ, INK_CONFIG=f"{laptop}/config.json",
               PATH=f"{C.VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    ink = str(C.VENV_BIN / "ink")
    shm = tempfile.mkdtemp(prefix="ink-enode-bench-", dir="/dev/shm")
    remote_dir = f"/dev/shm/ink-enode-bench-{tag}"
    sshd = None
    connect: list[float] = []
    first = None
    hub_rates: list[float] = []
    plain_rates: list[float] = []
    try:
        hub.start()
        hub.api("POST", f"/users/{args.user}")
        t0 = time.monotonic()
        hub.start_and_wait(args.user, "enode", {}, timeout=300)
        C.log(f"session up (POST -> ready) in {time.monotonic() - t0:.2f} s")
        token = hub.user_token(args.user)
        run([ink, "login", "--hub", hub.url, "--token", token], env)
        run([ink, "ssh-config"], env)
        config = f"{laptop}/ssh/config"
        ssh = ["ssh", "-F", config, "-o", "BatchMode=yes"]
        first = run([*ssh, "ink-enode", "true"], env)
        C.log(f"first connection (host key made and certified): {first:.3f} s")
        for _ in range(args.connects):
            connect.append(run([*ssh, "ink-enode", "true"], env))
        C.log("connect (ssh ink-enode true): " + " ".join(f"{t:.3f}" for t in connect))

        # the baseline: plain ssh to a loopback sshd of the same user, same key and certificate
        user_ca = open(hub.workdir / "ink-ssh-user-ca.pub").read().split()[:2]
        sshd, port, known = loopback_sshd(args.user, str(workdir), f"{laptop}/ssh", " ".join(user_ca))
        plain = ["-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
                 "-i", f"{laptop}/ssh/id_ed25519", "-o", f"CertificateFile={laptop}/ssh/id_ed25519-cert.pub",
                 "-o", "IdentitiesOnly=yes", "-P", str(port)]
        run([*ssh, "ink-enode", f"mkdir -p {remote_dir}"], env)
        src = f"{shm}/src.bin"
        with open(src, "wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(1 << 20))
        size = args.mib
        for rnd in range(1, args.rounds + 1):
            run([ink, "ssh-cert"], env)  # a fresh certificate for the plain ssh too
            t_up = run(["scp", "-F", config, "-o", "BatchMode=yes", src, f"ink-enode:{remote_dir}/a.bin"], env)
            t_down = run(["scp", "-F", config, "-o", "BatchMode=yes", f"ink-enode:{remote_dir}/a.bin", f"{shm}/b.bin"], env)
            p_up = run(["scp", *plain, src, f"{args.user}@127.0.0.1:{remote_dir}/p.bin"], env)
            p_down = run(["scp", *plain, f"{args.user}@127.0.0.1:{remote_dir}/p.bin", f"{shm}/c.bin"], env)
            hub_rates += [size / t_up, size / t_down]
            plain_rates += [size / p_up, size / p_down]
            C.log(f"round {rnd}: through the hub up {size / t_up:6.1f} down {size / t_down:6.1f} MiB/s;"
                  f" plain loopback up {size / p_up:6.1f} down {size / p_down:6.1f} MiB/s")
        run([*ssh, "ink-enode", f"rm -rf {remote_dir}"], env)
    except (C.BenchTimeout, C.BenchInterrupted, RuntimeError, TimeoutError, subprocess.TimeoutExpired) as e:
        C.log(f"enode_ssh: {e}")
    finally:
        C.protect_cleanup()
        if sshd is not None:
            sshd.terminate()
            sshd.wait(10)
        shutil.rmtree(shm, ignore_errors=True)
        for name in list(hub.user_model(args.user).get("servers", {})) if hub.proc else []:
            hub.api("DELETE", f"/users/{args.user}/servers/{name}")
        C.stop_hub(hub)
        left = tracker.cancel_leftovers()
        if left:
            C.log(f"cleanup: {len(left)} job(s) still listed: {[r['id'] for r in left]}")
        subprocess.run(["rm", "-rf", remote_dir])
    connect_s = C.median(connect)
    hub_rate = C.median(hub_rates)
    plain_rate = C.median(plain_rates)
    ratio = hub_rate / plain_rate if hub_rate and plain_rate else None
    C.log(f"scp medians: through the hub {hub_rate or 0:.1f} MiB/s, plain loopback {plain_rate or 0:.1f} MiB/s")
    C.log(f"RESULT enode connect_s={C.fmt_s(connect_s, 3)} scp_mib_s={hub_rate and f'{hub_rate:.1f}'} "
          f"ratio={ratio and f'{ratio:.2f}'}")
    ok = len(connect) == args.connects and len(hub_rates) == 2 * args.rounds
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
