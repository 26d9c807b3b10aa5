"""``ink``: command line of the INK Hub client.

    ink login [--hub URL] [--token TOKEN]
    ink jobs submit [--name N] [--cpus N] [--memory 2G] [--walltime 1:00:00] [--wait|--follow] -- CMD ARGS...
    ink jobs submit --script run.sh ...
    ink jobs ls | show ID | cancel ID | logs ID [--stderr] [--follow]
    ink files ls [PATH] | get REMOTE [LOCAL] | put LOCAL [REMOTE]
    ink sessions ls | start APP [--experiment E ...] | stop APP
    ink ssh-config [APP ...] [--key PATH] [--include]
    ink ssh APP | ssh-cert           (ssh's ProxyCommand and certificate renewal, written by ink ssh-config)

Every command takes ``--json`` (machine-readable output on stdout). Progress goes to stderr,
only when it is a terminal.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time

from . import __version__, config
from .api import (EXIT_AUTH, EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, Client,
                  InkError)
from .ssh import cmd_ssh, cmd_ssh_cert, cmd_ssh_config
from .transfer import download, upload

EPILOG = """exit codes:
  0  success
  1  the job failed or was cancelled (with --wait or --follow)
  2  bad command line
  3  not logged in, or the token is invalid, expired or revoked (HTTP 401)
  4  the token lacks a scope or may not do this (HTTP 403)
  5  no such job, file or session (HTTP 404)
  6  the request was refused: outside your profile, invalid, conflicting (HTTP 400/409/422)
  7  the hub, your portal server or the scheduler is unreachable or failed (HTTP 5xx, network)

environment: INK_HUB_URL and INK_TOKEN override the stored login; INK_CONFIG names its file
(default ~/.config/ink/config.json, mode 0600)."""

FINAL = ("completed", "failed", "cancelled")


# ---- output helpers --------------------------------------------------------------------------

class Out:
    def __init__(self, args):
        self.json = getattr(args, "json", False)
        self.quiet = getattr(args, "quiet", False)
        self.progress = not (self.json or self.quiet) and sys.stderr.isatty()
        self.bars: list = []  # status lines to clear before the program exits

    def close(self) -> None:
        for bar in self.bars:
            bar.close()

    def emit(self, data, text: str | None = None) -> None:
        if self.json:
            print(json.dumps(data, indent=1))
        elif text is not None:
            print(text)

    def bar(self, **kwargs):
        from tqdm import tqdm

        return tqdm(unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                    disable=not self.progress, **kwargs)

    def waiter(self):
        """A status line for waits (session start, job run), on stderr."""
        if not self.progress:
            return None
        from tqdm import tqdm

        bar = tqdm(total=100, file=sys.stderr, bar_format="{desc} {bar:20} {elapsed}", leave=False)
        self.bars.append(bar)

        def update(message, fraction):
            bar.set_description_str(str(message)[:70])
            if fraction is not None:
                bar.n = int(fraction * 100)
            bar.refresh()

        update.close = bar.close
        return update


def client_from(args, out: Out) -> Client:
    try:
        data = config.load()
    except OSError as e:
        raise InkError(str(e), EXIT_AUTH) from None
    return Client(data.get("hub", ""), data.get("token", ""), data.get("user"), waiter=out.waiter())


def _table(rows: list[list[str]], header: list[str]) -> str:
    rows = [header] + rows
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _size(n) -> str:
    n = float(n or 0)
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def _when(mtime) -> str:
    """A listing's mtime (seconds since the epoch, or ISO text) as local time."""
    if isinstance(mtime, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(mtime))
    return str(mtime or "")[:16].replace("T", " ")


# ---- login ------------------------------------------------------------------------------------

def cmd_login(args, out: Out) -> int:
    stored = {}
    try:
        stored = config.load()
    except OSError:
        pass
    hub = args.hub or stored.get("hub") or input("Hub URL: ").strip()
    token = args.token or os.environ.get("INK_TOKEN")
    if not token:
        if not sys.stdin.isatty():
            token = sys.stdin.readline().strip()
        else:
            token = getpass.getpass("Token (create one on the hub's Token page): ").strip()
    client = Client(hub, token)
    model = client.whoami()
    user = model["name"]
    scopes = sorted({s.split("!")[0] for s in model.get("scopes", [])})
    path = config.save({"hub": hub.rstrip("/"), "token": token, "user": user})
    ink = [s for s in scopes if s.startswith("custom:ink:")]
    out.emit({"hub": hub.rstrip("/"), "user": user, "scopes": scopes, "config": str(path)},
             f"Logged in to {hub.rstrip('/')} as {user} (saved in {path}, mode 0600).\n"
             f"INK scopes of this token: {', '.join(ink) or 'none (jobs and files will be refused)'}")
    return EXIT_OK


def cmd_logout(args, out: Out) -> int:
    removed = config.remove()
    out.emit({"removed": removed}, "Logged out." if removed else "Not logged in.")
    return EXIT_OK


# ---- jobs -------------------------------------------------------------------------------------

def _job_line(job: dict) -> list[str]:
    what = " ".join(job["command"]) if job.get("command") else "(script)"
    return [job["id"], job["backend_id"], job["name"], job["state"],
            "" if job.get("exit_code") is None else str(job["exit_code"]),
            job["submitted"][:19].replace("T", " "), what[:50]]


def _show(job: dict) -> str:
    keys = ("id", "name", "state", "reason", "exit_code", "backend", "backend_id", "node",
            "experiment", "command", "cpus", "memory_mb", "gpus", "walltime_s", "image", "workdir",
            "stdout_path", "stderr_path", "submitted", "ended")
    return "\n".join(f"{k:12} {' '.join(job[k]) if isinstance(job.get(k), list) else job.get(k)}"
                     for k in keys if job.get(k) is not None)


def cmd_jobs_submit(args, out: Out) -> int:
    request: dict = {}
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if args.script and command:
        raise InkError("give a command or --script, not both", EXIT_REFUSED)
    if args.script:
        text = sys.stdin.read() if args.script == "-" else open(args.script).read()
        request["script"] = text
    elif command:
        request["command"] = command
    else:
        raise InkError("nothing to run: give a command after -- or --script FILE", EXIT_REFUSED)
    for key in ("name", "experiment", "cpus", "memory", "gpus", "walltime", "image", "workdir"):
        value = getattr(args, key)
        if value is not None:
            request[key] = value
    if args.env:
        env = {}
        for item in args.env:
            key, sep, value = item.partition("=")
            if not sep:
                raise InkError(f"--env {item!r}: use NAME=VALUE", EXIT_REFUSED)
            env[key] = value
        request["env"] = env
    client = client_from(args, out)
    job = client.submit(request)
    if not (args.wait or args.follow):
        out.emit(job, job["id"])
        return EXIT_OK
    if not out.json:
        print(job["id"], file=sys.stderr if args.follow else sys.stdout)
    job = _follow(client, job["id"], out) if args.follow else _wait(client, job, out)
    return _finish(job, out)


def _wait(client: Client, job: dict, out: Out) -> dict:
    waiter, delay = client.waiter, 0.5
    try:
        while job["state"] not in FINAL:
            if waiter:
                waiter(f"job {job['id']} ({job['backend']} {job['backend_id']}) {job['state']}", None)
            time.sleep(delay)
            delay = min(delay * 1.5, 5)
            job = client.job(job["id"])
    finally:
        if waiter:
            waiter.close()
    return job


def _follow(client: Client, key: str, out: Out, stream: str = "stdout") -> dict:
    offset, state, sink = 0, "", sys.stdout.buffer
    while True:
        data, _size_now, state = client.output(key, stream, offset)
        if data:
            offset += len(data)
            if not out.json:
                sink.write(data)
                sink.flush()
            continue
        if state in FINAL:
            break
        time.sleep(1)
    return client.job(key)


def _finish(job: dict, out: Out) -> int:
    if out.json:
        out.emit(job)
    else:
        detail = f" ({job['reason']})" if job.get("reason") else ""
        print(f"job {job['id']} {job['state']}{detail}", file=sys.stderr)
    return EXIT_OK if job["state"] == "completed" else EXIT_FAILED


def cmd_jobs_ls(args, out: Out) -> int:
    jobs = client_from(args, out).jobs(args.state, args.limit)
    out.emit({"jobs": jobs}, _table([_job_line(j) for j in jobs],
                                    ["ID", "BACKEND_ID", "NAME", "STATE", "EXIT", "SUBMITTED", "COMMAND"]))
    return EXIT_OK


def cmd_jobs_show(args, out: Out) -> int:
    job = client_from(args, out).job(args.id)
    out.emit(job, _show(job))
    return EXIT_OK


def cmd_jobs_cancel(args, out: Out) -> int:
    job = client_from(args, out).cancel(args.id)
    out.emit(job, f"job {job['id']} {job['state']}")
    return EXIT_OK


def cmd_jobs_logs(args, out: Out) -> int:
    client = client_from(args, out)
    stream = "stderr" if args.stderr else "stdout"
    if args.follow:
        job = _follow(client, args.id, out, stream)
        if out.json:
            out.emit(job)
        return EXIT_OK
    data, size, state = client.output(args.id, stream)
    if out.json:
        out.emit({"id": args.id, "stream": stream, "size": size, "state": state,
                  "data": data.decode(errors="replace")})
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK


# ---- files ------------------------------------------------------------------------------------

def cmd_files_ls(args, out: Out) -> int:
    listing = client_from(args, out).list_dir(args.path, args.all)
    rows = [[e.get("perms", ""), e.get("owner", ""), _size(e.get("size")),
             _when(e.get("mtime")),
             e["name"] + ("/" if e.get("type") == "directory" else "")] for e in listing["entries"]]
    out.emit(listing, _table(rows, ["PERMS", "OWNER", "SIZE", "MODIFIED", "NAME"]))
    return EXIT_OK


def cmd_files_get(args, out: Out) -> int:
    result = download(client_from(args, out), args.remote, args.local or ".", out.bar)
    out.emit(result, f"{result['local']} ({_size(result['size'])})")
    return EXIT_OK


def cmd_files_put(args, out: Out) -> int:
    if not os.path.isfile(args.local):
        raise InkError(f"{args.local} is not a file", EXIT_REFUSED)
    result = upload(client_from(args, out), args.local, args.remote or "", args.overwrite, out.bar)
    out.emit(result, f"{result['path']} ({_size(result['size'])})")
    return EXIT_OK


# ---- sessions ---------------------------------------------------------------------------------

def cmd_sessions_ls(args, out: Out) -> int:
    servers = client_from(args, out).servers()
    rows = [[name or "(default)", "ready" if s.get("ready") else (s.get("pending") or "stopped"),
             str(s.get("started") or "")[:19].replace("T", " "), s.get("url", "")]
            for name, s in sorted(servers.items())]
    out.emit({"sessions": servers}, _table(rows, ["APP", "STATE", "STARTED", "URL"]))
    return EXIT_OK


def cmd_sessions_start(args, out: Out) -> int:
    options = {k: getattr(args, k) for k in ("experiment", "image", "cpus", "memory", "gpus", "walltime")
               if getattr(args, k) is not None}
    client = client_from(args, out)
    try:
        server = client.start_session(args.app, options, wait=not args.no_wait)
    finally:
        if client.waiter:
            client.waiter.close()
    url = client.hub + (server.get("url") or "")
    out.emit({"app": args.app, **server}, f"{args.app}: {'ready' if server.get('ready') else 'starting'} at {url}")
    return EXIT_OK


def cmd_sessions_stop(args, out: Out) -> int:
    client = client_from(args, out)
    try:
        client.stop_session(args.app, wait=not args.no_wait)
    finally:
        if client.waiter:
            client.waiter.close()
    out.emit({"app": args.app, "stopped": True}, f"{args.app}: stopped")
    return EXIT_OK


# ---- parser -----------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: `ink --json jobs ls` and `ink jobs ls --json` both work (a subcommand's default
    # would otherwise overwrite the top-level flag)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output on stdout")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars")

    p = argparse.ArgumentParser(prog="ink", description="INK Hub client: batch jobs, files and "
                                "sessions with a hub token.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])
    p.add_argument("--version", action="version", version=f"ink {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    login = sub.add_parser("login", parents=[common], help="store the hub URL and a token (0600)")
    login.add_argument("--hub", help="hub URL, e.g. https://ink.example.org")
    login.add_argument("--token", help="hub API token (default: $INK_TOKEN, stdin or a prompt)")
    login.set_defaults(func=cmd_login)
    sub.add_parser("logout", parents=[common], help="forget the stored token").set_defaults(func=cmd_logout)

    jobs = sub.add_parser("jobs", help="batch jobs").add_subparsers(dest="action", required=True)
    submit = jobs.add_parser("submit", parents=[common], help="submit a batch job",
                             description="Submit a command (after --) or a script.")
    submit.add_argument("--script", help="script file to run ('-': standard input)")
    submit.add_argument("--name", help="job name (lowercase letters, digits, - and _)")
    submit.add_argument("--experiment", help="experiment (default: your first)")
    submit.add_argument("--cpus", type=int)
    submit.add_argument("--memory", help="e.g. 2G")
    submit.add_argument("--gpus", type=int)
    submit.add_argument("--walltime", help="e.g. 1:00:00")
    submit.add_argument("--image", help="one of the experiment's OS images")
    submit.add_argument("--workdir", help="working directory on the cluster (default: home)")
    submit.add_argument("--env", action="append", metavar="NAME=VALUE", help="extra environment variable")
    submit.add_argument("--wait", action="store_true", help="wait until the job ends (exit 1 if it failed)")
    submit.add_argument("--follow", action="store_true", help="stream its stdout until it ends")
    submit.add_argument("command", nargs=argparse.REMAINDER, help="-- program and arguments")
    submit.set_defaults(func=cmd_jobs_submit)
    ls = jobs.add_parser("ls", parents=[common], help="list your INK jobs")
    ls.add_argument("--state", choices=("all", "active", "ended"), default="all")
    ls.add_argument("--limit", type=int, default=200)
    ls.set_defaults(func=cmd_jobs_ls)
    for name, func, text in (("show", cmd_jobs_show, "show one job"),
                             ("cancel", cmd_jobs_cancel, "cancel a job")):
        c = jobs.add_parser(name, parents=[common], help=text)
        c.add_argument("id", help="INK job id or the scheduler's job id")
        c.set_defaults(func=func)
    logs = jobs.add_parser("logs", parents=[common], help="a job's stdout (or stderr)")
    logs.add_argument("id")
    logs.add_argument("--stderr", action="store_true")
    logs.add_argument("-f", "--follow", action="store_true", help="keep reading until the job ends")
    logs.set_defaults(func=cmd_jobs_logs)

    files = sub.add_parser("files", help="your files on the cluster").add_subparsers(dest="action", required=True)
    fls = files.add_parser("ls", parents=[common], help="list a directory")
    fls.add_argument("path", nargs="?", default=".", help="absolute, or relative to your home")
    fls.add_argument("-a", "--all", action="store_true", help="include hidden files")
    fls.set_defaults(func=cmd_files_ls)
    get = files.add_parser("get", parents=[common], help="download a file (resumes a partial one)")
    get.add_argument("remote")
    get.add_argument("local", nargs="?")
    get.set_defaults(func=cmd_files_get)
    put = files.add_parser("put", parents=[common], help="upload a file (resumable)")
    put.add_argument("local")
    put.add_argument("remote", nargs="?", help="target path (ending in / : a directory); default: home")
    put.add_argument("--overwrite", action="store_true")
    put.set_defaults(func=cmd_files_put)

    sessions = sub.add_parser("sessions", help="interactive sessions").add_subparsers(dest="action", required=True)
    sessions.add_parser("ls", parents=[common], help="your sessions").set_defaults(func=cmd_sessions_ls)
    start = sessions.add_parser("start", parents=[common], help="start an app and wait until it is ready")
    start.add_argument("app")
    for opt in ("experiment", "image", "memory", "walltime"):
        start.add_argument(f"--{opt}")
    start.add_argument("--cpus", type=int)
    start.add_argument("--gpus", type=int)
    start.add_argument("--no-wait", action="store_true")
    start.set_defaults(func=cmd_sessions_start)
    stop = sessions.add_parser("stop", parents=[common], help="stop an app")
    stop.add_argument("app")
    stop.add_argument("--no-wait", action="store_true")
    stop.set_defaults(func=cmd_sessions_stop)

    ssh_config = sub.add_parser(
        "ssh-config", parents=[common], help="set up `ssh ink-APP` (scp, rsync, VS Code Remote-SSH)",
        description="Write ~/.config/ink/ssh/config with a Host ink-APP block per app, a key pair "
        "(unless --key), its hub-signed certificate and a known_hosts that trusts the hub's "
        "session host CA. Needs a token with the custom:ink:ssh scope.")
    ssh_config.add_argument("apps", nargs="*", metavar="APP", help="apps to reach (default: enode)")
    ssh_config.add_argument("--key", help="use this private key (its .pub beside it) instead of "
                            "a new ~/.config/ink/ssh/id_ed25519")
    ssh_config.add_argument("--include", action="store_true",
                            help="add an Include line for it at the top of ~/.ssh/config")
    ssh_config.set_defaults(func=cmd_ssh_config)
    ssh = sub.add_parser("ssh", parents=[common], help="ssh's ProxyCommand: stdin/stdout to a session",
                         description="Carry one SSH connection to APP's session through the hub "
                         "(used by the ProxyCommand that ink ssh-config writes).")
    ssh.add_argument("app")
    ssh.add_argument("--ink-config", help="the login file to use (default: $INK_CONFIG or "
                     "~/.config/ink/config.json)")
    ssh.set_defaults(func=cmd_ssh)
    cert = sub.add_parser("ssh-cert", parents=[common], help="renew the SSH certificate of your key",
                          description="Have the hub sign the public key again (ink ssh-config's "
                          "Match line runs this before every connection).")
    cert.add_argument("--key", help="private key (default: ~/.config/ink/ssh/id_ed25519)")
    cert.add_argument("--ink-config", help="the login file to use")
    cert.set_defaults(func=cmd_ssh_cert)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = Out(args)
    try:
        return args.func(args, out)
    except InkError as e:
        if out.json:
            print(json.dumps({"error": str(e), "status": e.status, "exit_code": e.exit_code}))
        print(f"ink: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ink: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"ink: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        out.close()


if __name__ == "__main__":
    sys.exit(main())
