"""ink-session: the job-side wrapper that runs on the worker node.

It picks a free port, starts the session's server (``jupyterhub-singleuser`` with the INK
extensions) on it, waits until the server answers HTTP, and only then reports ``{"port": N}``
to the hub with the server's own API token. Reporting late means the hub's first readiness
check already succeeds (no back-off), and a server that crashes at start-up fails the spawn
with its own output instead of a time-out.

Job side: imports nothing of the hub (standard library only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from . import credentials

REPORT_PATH = "ink/session-port"


def free_port(ip: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def listeners_on(port: int) -> list[int]:
    """uids of the sockets listening on ``port`` (any address), from /proc/net/tcp{,6}."""
    uids = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state, uid = fields[1], fields[3], fields[7]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        uids.append(int(uid))
        except (OSError, StopIteration, IndexError, ValueError):
            continue
    return uids


def port_is_ours(port: int) -> bool:
    """True if every socket listening on ``port`` belongs to this Unix user.

    The port is free when chosen, but another user on a shared node could bind it before our
    server does; reporting it would send this user's traffic (and credentials) to them.
    """
    uids = listeners_on(port)
    return bool(uids) and all(uid == os.getuid() for uid in uids)


def _probe_host(ip: str) -> str:
    return "127.0.0.1" if ip in ("", "0.0.0.0") else ("::1" if ip == "::" else ip)


def wait_until_serving(proc: subprocess.Popen, url: str, timeout: float) -> bool:
    """Poll the server's own URL until it answers (any HTTP status) or the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answered
        except (urllib.error.URLError, OSError):
            # a refused local connection costs microseconds: probe often, report promptly
            time.sleep(0.02)
    return False


def report_port(api_url: str, token: str, port: int, attempts: int = 5) -> None:
    """POST {"port": port} to the hub; raise RuntimeError if the hub refuses."""
    request = urllib.request.Request(
        f"{api_url.rstrip('/')}/{REPORT_PATH}",
        data=json.dumps({"port": port}).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=10):
                return
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace")[:500]
            raise RuntimeError(f"the hub refused the port report: HTTP {e.code} {body}") from None
        except (urllib.error.URLError, OSError) as e:
            if attempt == attempts - 1:
                raise RuntimeError(f"cannot reach the hub at {api_url}: {e}") from None
            time.sleep(0.5 * (attempt + 1))


def load_env_file() -> None:
    """Load the session environment from $INK_ENV_FILE (HTCondor: kept out of the job ad).

    The file is written 0600 by the user's submit helper; without a shared file system
    HTCondor transfers it into the job's scratch directory under the same name.
    """
    path = os.environ.get("INK_ENV_FILE")
    if not path:
        return
    if not os.path.exists(path):
        path = os.path.basename(path)
    with open(path) as f:
        env = json.load(f)
    os.environ.update({str(k): str(v) for k, v in env.items()})


def install_kernels() -> None:
    """Make the experiment's kernels ($INK_KERNELS, JSON from the site catalogue) visible to the
    server: kernel specs in a private directory put first on JUPYTER_PATH."""
    text = os.environ.get("INK_KERNELS")
    if not text:
        return
    import tempfile

    root = tempfile.mkdtemp(prefix="ink-kernels-")
    for name, spec in json.loads(text).items():
        if not name.replace("-", "").replace("_", "").isalnum():
            continue
        directory = os.path.join(root, "kernels", name)
        os.makedirs(directory)
        with open(os.path.join(directory, "kernel.json"), "w") as f:
            json.dump({"argv": spec["argv"], "display_name": spec["display_name"],
                       "language": spec.get("language", "python"), "env": spec.get("env", {})}, f)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        p for p in (root, os.environ.get("JUPYTER_PATH", "")) if p)


def install_ssh_credentials() -> None:
    """Move the SSH key and certificate the hub minted for EShell out of the environment into
    ~/.ink/ssh (0700 directory, 0600 files), with the login nodes' host keys in known_hosts."""
    key = os.environ.pop("INK_SSH_KEY", None)
    cert = os.environ.pop("INK_SSH_CERT", None)
    if not key or not cert:
        return
    directory = os.path.join(os.path.expanduser("~"), ".ink", "ssh")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    nodes = json.loads(os.environ.get("INK_LOGIN_NODES") or "{}")
    known = [f"[{n['host']}]:{n['port']} {n['host_key']}" for n in nodes.values() if n.get("host_key")]
    for name, text in (("id_ink", key), ("id_ink-cert.pub", cert), ("known_hosts", "\n".join(known) + "\n")):
        path = os.path.join(directory, name)
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    os.environ["INK_SSH_DIR"] = directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ink-session",
        description="Start an INK session server on a free port and report the port to the hub.",
    )
    parser.add_argument("--ip", default="0.0.0.0", help="address the server binds to")
    parser.add_argument("--ready-timeout", type=float, default=300.0,
                        help="seconds to wait for the server to answer HTTP")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- the server command; it finds address and port in "
                        "$JUPYTERHUB_SERVICE_URL, as jupyterhub-singleuser does")
    if os.environ.get("INK_MERGE_STDERR"):
        os.dup2(sys.stdout.fileno(), sys.stderr.fileno())
    args = parser.parse_args(argv)
    try:
        load_env_file()
    except (OSError, ValueError) as e:
        parser.error(f"cannot read the session environment from $INK_ENV_FILE: {e}")
    install_kernels()
    if "INK_SSH_KEY" in os.environ or credentials.ENV_CCACHE in os.environ:
        install_ssh_credentials()
        credentials.install_ccache()
        # /proc/PID/environ keeps the environment a process was started with: start again
        # without the key and ticket, so they are only in the 0600 files (and without
        # $INK_ENV_FILE, already loaded, which would bring the ticket back)
        os.environ.pop("INK_ENV_FILE", None)
        os.execv(sys.executable, [sys.executable, "-m", "ink_spawner.session", *(argv if argv is not None else sys.argv[1:])])
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no server command given")
    api_url = os.environ.get("JUPYTERHUB_API_URL")
    token = os.environ.get("JUPYTERHUB_API_TOKEN")
    credentials.activate(api_url, token)  # refresh the ticket, remove it at exit
    if not api_url or not token:
        parser.error("JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN must be set (by the hub)")

    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    port = free_port(args.ip)
    # The server reads address and port from JUPYTERHUB_SERVICE_URL: not on its command line,
    # which every user of the node can read in /proc.
    bind_host = f"[{args.ip}]" if ":" in args.ip else args.ip
    os.environ["JUPYTERHUB_SERVICE_URL"] = f"http://{bind_host}:{port}{prefix}"
    if os.environ.get("INK_SETUP_SCRIPT"):
        # the experiment's software setup (e.g. a CVMFS script), sourced by a constant program
        command = ["/bin/bash", "-c", 'source "$INK_SETUP_SCRIPT" && exec "$@"', "ink-setup", *command]
    # a private TMPDIR for the session: apps put their sockets there (jupyter-server-proxy's
    # socket directories, the desktop's X cookie), and it goes away with the session
    session_tmp = tempfile.mkdtemp(prefix="ink-session-")
    os.environ["TMPDIR"] = session_tmp
    setup_dask()
    print(f"ink-session: starting {command[0]} on port {port} (host {socket.gethostname()})",
          flush=True)
    try:
        return _run(command, args, port, prefix, api_url, token)
    finally:
        cancel_dask_workers()
        shutil.rmtree(session_tmp, ignore_errors=True)


def setup_dask() -> None:
    """Write the session's Dask config ($INK_DASK from the hub, decided by the validator) and
    its TLS certificate into ~/.ink/dask/session-ID, and point Dask at it ($DASK_CONFIG), so
    that a plain SLURMCluster() submits proper workers and its scheduler speaks only TLS."""
    if not os.environ.get("INK_DASK"):
        return
    try:
        from ink_dask.config import write_session_config

        directory = write_session_config()
    except Exception as e:  # Dask is a service of the session, never a reason to fail it
        print(f"ink-session: no Dask configuration: {e}", flush=True)
        return
    if directory:
        os.environ["DASK_CONFIG"] = directory


def cancel_dask_workers() -> None:
    """The session's Dask workers end with it (stop, culler, wall time)."""
    if not os.environ.get("INK_DASK"):
        return
    try:
        from ink_dask.cleanup import cancel_workers
        from ink_dask.config import session_dir, session_job_id, settings

        cancel_workers(settings()["profile"]["backend"], session_job_id())
        # the session's certificate and config go with it
        shutil.rmtree(session_dir(), ignore_errors=True)
    except Exception as e:
        print(f"ink-session: could not cancel the Dask workers: {e}", flush=True)

def session_lens_path(home: str | None = None, server_name: str | None = None) -> str:
    """Where a session's Job Lens samples go: ``~/.ink/lens/session-NAME.jsonl`` (the portal's
    metrics API reads it there; one file per app, the newest session of it)."""
    name = server_name if server_name is not None else os.environ.get("JUPYTERHUB_SERVER_NAME", "")
    safe = "".join(c for c in name if c.isalnum() or c in "-_")[:64] or "default"
    return os.path.join(home or os.path.expanduser("~"), ".ink", "lens", f"session-{safe}.jsonl")


def start_lens(pid: int):
    """Sample the session's process tree in a thread (Job Lens); None if off or impossible.
    A lens never stops a session: any failure only means no figures."""
    from .joblens.sampler import Sampler, allocated_cpus, enabled, settings_from_env

    if not enabled():
        return None
    interval, max_bytes = settings_from_env()
    try:
        sampler = Sampler(pid, session_lens_path(), interval, max_bytes, cpus=allocated_cpus(),
                          kind="session")
    except OSError as e:
        print(f"ink-session: Job Lens is off for this session: {e}", flush=True)
        return None
    sampler.start_thread()
    return sampler


def _run(command, args, port, prefix, api_url, token) -> int:
    proc = subprocess.Popen(command)
    lens = start_lens(proc.pid)
    try:
        code = _serve(proc, args, port, prefix, api_url, token)
    finally:
        if lens is not None:
            lens.stop(exit_code=proc.poll())
    return code


def _serve(proc, args, port, prefix, api_url, token) -> int:

    def forward(signum, _frame):
        if proc.poll() is None:
            proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)

    probe = f"http://{_probe_host(args.ip)}:{port}{prefix}api"
    if not wait_until_serving(proc, probe, args.ready_timeout):
        if proc.poll() is None:
            print(f"ink-session: server did not answer within {args.ready_timeout:g} s", flush=True)
            proc.terminate()
        code = proc.wait()
        print(f"ink-session: server exited with code {code} before it was ready", flush=True)
        return code or 1
    if not port_is_ours(port):
        print(f"ink-session: port {port} is held by another user's process; not reporting it",
              flush=True)
        proc.terminate()
        proc.wait()
        return 1
    try:
        report_port(api_url, token, port)
    except RuntimeError as e:
        print(f"ink-session: {e}", flush=True)
        proc.terminate()
        proc.wait()
        return 1
    print(f"ink-session: reported port {port} to the hub", flush=True)
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
