"""Click-to-usable time of each app: POST start -> the app's first successful answer through
the hub's proxy, on the real dev Slurm (median of 3 per app).

"Usable" is the app's own answer, not the hub's readiness: JupyterLab's /lab page, VS Code's
workbench page from code-server, the ROOT browser's page, and for the desktop the VNC server's
RFB banner on the websocket noVNC uses (jupyter-server-proxy starts an app on its first request,
so this includes the app's own start-up).

    .venv/bin/python benchmarks/app_ready.py [--rounds 3] [--user inkbench]

Last line: ``RESULT app_ready_median_s jupyter=<s> vscode=<s> desktop=<s> rootbrowse=<s>``.
"""

from __future__ import annotations

import argparse
import sys
import time

import _common as C  # noqa: I001  (puts tests/ and the repo on sys.path)

import requests
import websocket

APPS = ("jupyter", "vscode", "desktop", "rootbrowse")
CATALOGUE = """
defaults: {memory: 1G}
experiments:
  default:
    title: Everyone
    members: {everyone: true}
    apps: [jupyter, vscode, desktop, rootbrowse]
"""


def first_answer(hub, user: str, app: str, token: str, timeout: float = 120) -> None:
    """Block until the app answers through the proxy (raise on time-out)."""
    base = f"{hub.url}/user/{user}/{app}"
    headers = {"Authorization": f"token {token}"}
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if app == "desktop":
                ws = websocket.create_connection(f"ws://127.0.0.1:{hub.port}/user/{user}/desktop/desktop-vnc/",
                                                 header=[f"Authorization: token {token}"], timeout=60)
                try:
                    banner = ws.recv()
                finally:
                    ws.close()
                if isinstance(banner, bytes) and banner.startswith(b"RFB "):
                    return
                last = f"unexpected banner {banner[:20]!r}"
            else:
                path = {"jupyter": "/lab", "vscode": "/vscode/", "rootbrowse": "/rootbrowse/"}[app]
                r = requests.get(base + path, headers=headers, timeout=60)  # code-server redirects to ?folder=
                if r.status_code == 200 and r.url.startswith(base + path):  # the app, not a login page
                    return
                last = f"HTTP {r.status_code}"
        except (requests.RequestException, websocket.WebSocketException, OSError) as e:
            last = str(e)
        time.sleep(0.05)
    raise TimeoutError(f"{app} did not answer within {timeout} s (last: {last})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--user", default="inkbench",
                        help="Unix user the sessions run as (created if missing); not one of the "
                        "test users, whose jobs test clean-ups cancel")
    parser.add_argument("--budget", type=int, default=900, help="seconds before the run gives up")
    args = parser.parse_args()
    C.check_slurm()
    C.bound_runtime(args.budget)
    harness = C.harness
    harness.ensure_unix_users([args.user])
    tag = C.run_tag()
    hub_id = f"bench-{tag}"
    tracker = C.JobTracker(ink_hub_id=hub_id)
    workdir = C.make_workdir("ink-app-ready-")
    hub = harness.Hub(workdir / "hub", extra_config=f"""
c.SlurmBackend.poll_interval = 2
c.SlurmBackend.spawn_poll_interval = 0.5
c.InkSpawner.poll_interval = 2
c.InkSpawner.hub_id = {hub_id!r}
c.JupyterHub.log_level = "INFO"
c.Authenticator.allowed_users = {{{args.user!r}}}
""", backend="slurm", catalogue=CATALOGUE)
    times: dict[str, list[float]] = {app: [] for app in APPS}
    try:
        hub.start()
        token = hub.user_token(args.user) if hub.api("POST", f"/users/{args.user}").status_code in (201, 409) else None
        for rnd in range(1, args.rounds + 1):
            for app in APPS:
                t0 = time.monotonic()
                hub.start_and_wait(args.user, app, {}, timeout=180)
                t_ready = time.monotonic() - t0
                first_answer(hub, args.user, app, token)
                elapsed = time.monotonic() - t0
                times[app].append(elapsed)
                C.log(f"round {rnd} {app:10s} hub ready {t_ready:6.2f} s   usable {elapsed:6.2f} s")
                hub.stop_server(args.user, app, timeout=90)
    except (C.BenchTimeout, C.BenchInterrupted, RuntimeError, TimeoutError) as e:
        C.log(f"app_ready: {e}")
    finally:
        C.protect_cleanup()
        for name in list(hub.user_model(args.user).get("servers", {})) if hub.proc else []:
            hub.api("DELETE", f"/users/{args.user}/servers/{name}")
        C.stop_hub(hub)
        left = tracker.cancel_leftovers()
        if left:
            C.log(f"cleanup: {len(left)} job(s) still listed: {[r['id'] for r in left]}")
    medians = {app: C.median(times[app]) for app in APPS}
    C.log("RESULT app_ready_median_s " + " ".join(f"{app}={C.fmt_s(medians[app], 2)}" for app in APPS))
    return 0 if all(len(times[app]) == args.rounds for app in APPS) else 1


if __name__ == "__main__":
    sys.exit(main())
