"""Doctor checks of a Slurm site: commands, controller, MUNGE, partitions and accounts the
catalogue names, and one short test job as a real user that reports what a session will find on
a worker node (shared home, the hub's API, the apps' programs, the images, the clock)."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import secrets
import sys
import time

# the programs each app needs on a node come from the apps' own table (standard library only,
# as ink_hub.installed already reads it), so a new app's stack is checked without a second list
from ink_proxy_ext.apps import stack_programs

from .base import FAIL, OK, SKIP, WARN, Result, run, which

COMMANDS = ("sbatch", "squeue", "scancel", "scontrol")
RUNUSER = "/usr/sbin/runuser"


def slurm_command(doctor, name: str) -> str:
    """The command the hub uses (SlurmBackend.<name>, else the name), found in the doctor's PATH."""
    if name == "sinfo":
        return doctor.sinfo
    return doctor.hub_option("SlurmBackend", name, name)


def as_user(user: str, argv: list[str]) -> list[str]:
    if os.geteuid() == 0 and user != pwd.getpwuid(os.getuid()).pw_name:
        return [RUNUSER, "-u", user, "--", *argv]
    return argv


async def check_slurm(doctor) -> list[Result]:
    rows = []
    found, missing = {}, []
    for name in (*COMMANDS, "sinfo"):
        path = which(slurm_command(doctor, name), doctor.path)
        if path:
            found[name] = path
        else:
            missing.append(slurm_command(doctor, name))
    if missing:
        rows.append(Result("Slurm: commands", FAIL, f"not found in PATH: {', '.join(missing)}",
                           "install slurm-client on the hub host, or give absolute paths in "
                           "SlurmBackend.sbatch/squeue/scancel/scontrol"))
    else:
        rows.append(Result("Slurm: commands", OK, ", ".join(found) + f" in {os.path.dirname(found['sbatch'])}"))
    rows.append(await check_munge(doctor))
    if "sinfo" not in found:
        rows.append(Result("Slurm: controller", SKIP, "no sinfo to ask"))
        rows.append(Result("test job", SKIP, "not submitted: Slurm commands are missing"))
        return rows
    done = await run([found["sinfo"], "-h", "-o", "%R|%a"], doctor.timeout)
    if not done.ok:
        rows.append(Result("Slurm: controller", FAIL, done.why(),
                           "check slurmctld, SlurmctldHost in slurm.conf and MUNGE (same key as the cluster)"))
        return rows
    partitions = {}
    for line in done.stdout.splitlines():
        name, _, avail = line.strip().partition("|")
        if name:
            partitions[name] = avail
    default = await run([found["sinfo"], "-h", "-o", "%P"], doctor.timeout)
    default_name = next((p.rstrip("*") for p in default.stdout.split() if p.endswith("*")), None)
    rows.append(Result("Slurm: controller", OK, f"answers; partitions {', '.join(sorted(partitions))}"))
    rows += partition_rows(doctor, partitions, default_name)
    rows += await account_rows(doctor)
    if len(found) == len(COMMANDS) + 1:
        rows += await test_job(doctor, found, default_name)
    else:
        rows.append(Result("test job", SKIP, "not submitted: Slurm commands are missing"))
    return rows


async def check_munge(doctor) -> Result:
    munge, unmunge = which(doctor.munge, doctor.path), which(doctor.unmunge, doctor.path)
    if not munge or not unmunge:
        return Result("MUNGE", FAIL, f"{doctor.munge}/{doctor.unmunge} not found", "apt install munge")
    cred = await run([munge, "-n", "-S", doctor.munge_socket], doctor.timeout)
    if not cred.ok:
        return Result("MUNGE", FAIL, cred.why(),
                      f"start munged (its socket is {doctor.munge_socket}; Doctor.munge_socket if elsewhere) "
                      "with the cluster's /etc/munge/munge.key")
    back = await run([unmunge, "-S", doctor.munge_socket], doctor.timeout, stdin=cred.stdout.encode())
    if not back.ok:
        return Result("MUNGE", FAIL, back.why(), "munge.key differs from the cluster's, or the clock is off")
    return Result("MUNGE", OK, f"credential encoded and decoded through {doctor.munge_socket}")


def routed(doctor, key: str) -> dict[str, list[str]]:
    wanted: dict[str, list[str]] = {}
    for name, exp in doctor.site.catalogue.experiments.items():
        value = getattr(exp.routing.slurm, key)
        if value:
            wanted.setdefault(value, []).append(name)
    return wanted


def partition_rows(doctor, partitions: dict, default_name: str | None) -> list[Result]:
    wanted = routed(doctor, "partition")
    if not wanted:
        return [Result("Slurm: partitions", OK if default_name else WARN,
                       f"the catalogue names none; jobs go to the default partition {default_name or '(none!)'}",
                       "set routing.slurm.partition or a Default=YES partition")]
    gone = [p for p in wanted if p not in partitions]
    down = [p for p in wanted if partitions.get(p) not in (None, "up")]
    if gone:
        return [Result("Slurm: partitions", FAIL,
                       "unknown: " + "; ".join(f"{p} (experiments {', '.join(wanted[p])})" for p in gone),
                       "fix routing.slurm.partition in the catalogue or create the partition")]
    if down:
        return [Result("Slurm: partitions", WARN, f"not up: {', '.join(down)}", "scontrol update PartitionName=... State=UP")]
    return [Result("Slurm: partitions", OK, f"{', '.join(sorted(wanted))} exist and are up")]


async def account_rows(doctor) -> list[Result]:
    wanted = routed(doctor, "account")
    if not wanted:
        return []
    sacctmgr = which(doctor.sacctmgr, doctor.path)
    done = await run([sacctmgr, "-n", "-P", "show", "account", "format=account"], doctor.timeout) if sacctmgr else None
    if done is None or not done.ok:
        return [Result("Slurm: accounts", WARN, "cannot list accounts (" + (done.why() if done else "no sacctmgr") + ")",
                       "accounts are checked through slurmdbd; without it sbatch refuses unknown ones at submit")]
    known = set(done.stdout.split())
    gone = [a for a in wanted if a not in known]
    if gone:
        return [Result("Slurm: accounts", FAIL, "unknown: " + ", ".join(gone), "sacctmgr add account NAME")]
    return [Result("Slurm: accounts", OK, f"{', '.join(sorted(wanted))} exist")]


# ---- the test job -------------------------------------------------------------------------------

JOB_SCRIPT = """#!{python}
# ink-hub doctor's test job: what a session will find on this node (no change made here).
import json, os, shutil, socket, time, urllib.request
CONFIG = json.loads({config!r})
out = {{"host": socket.gethostname(), "time": time.time()}}
try:
    with open(CONFIG["marker"]) as f:
        out["marker"] = f.read().strip() == CONFIG["nonce"]
except OSError as e:
    out["marker"] = False
    out["marker_error"] = str(e)
try:
    with urllib.request.urlopen(CONFIG["hub_api_url"], timeout=CONFIG["timeout"]) as r:
        out["hub_status"] = r.status
        out["hub_body"] = r.read(65536).decode(errors="replace")[:400]
except Exception as e:
    out["hub_error"] = type(e).__name__ + ": " + str(e)[:300]
found = {{}}
for name, fallback in CONFIG["programs"]:
    found[name] = shutil.which(name, path=CONFIG["path"]) or (fallback if fallback and os.access(fallback, os.X_OK) else None)
out["programs"] = found
out["images"] = {{p: os.path.isfile(p) for p in CONFIG["images"]}}
print("INK-DOCTOR " + json.dumps(out), flush=True)
"""


async def _listen_if_free(host: str, port: int, nonce: str):
    """Answer on the hub's API address while the test job runs, if no hub listens there."""
    body = json.dumps({"ink-doctor": nonce}).encode()

    async def answer(reader, writer):
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    try:
        return await asyncio.start_server(answer, host, port)
    except OSError:
        return None  # in use: the hub (or something) listens there; the job asks it


async def test_job(doctor, commands: dict, default_partition: str | None) -> list[Result]:
    user = doctor.test_user
    if not user:
        return [Result("test job", WARN, "skipped: no test user",
                       "give --test-user USER (a real user with a shared home) to run a short job")]
    try:
        home = pwd.getpwnam(user).pw_dir
    except KeyError:
        return [Result("test job", FAIL, f"test user {user!r} does not exist on the hub host",
                       "give an existing user (LDAP/SSSD as on the nodes)")]
    nonce = secrets.token_hex(8)
    marker, output = f"{home}/.ink-doctor-{nonce}.marker", f"{home}/.ink-doctor-{nonce}.out"
    spawner_cfg = doctor.site.hub_config.get("InkSpawner") or {}
    job_path = spawner_cfg.get("job_path") or os.pathsep.join(
        [os.path.join(sys.prefix, "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    session = (spawner_cfg.get("session_command") or [os.path.join(sys.prefix, "bin", "ink-session")])[0]
    apps = {a for exp in doctor.site.catalogue.experiments.values() for a in exp.apps}
    programs = [(session, None)] + [p for app in sorted(apps) for p in stack_programs(app)]
    images = sorted({i.path for i in doctor.site.catalogue.images.values()})
    if images:
        programs.append(("apptainer", None))
    config = json.dumps({"nonce": nonce, "marker": marker, "hub_api_url": doctor.hub_api_url.rstrip("/") + "/",
                         "timeout": min(doctor.timeout, 15), "path": job_path, "programs": programs,
                         "images": images})
    script = JOB_SCRIPT.format(python=sys.executable, config=config)
    partition = next(iter(routed(doctor, "partition")), None) or default_partition

    written = await run(as_user(user, ["tee", marker]), doctor.timeout, stdin=nonce.encode() + b"\n")
    if not written.ok:
        return [Result("test job", FAIL, f"cannot write in {home} as {user}: {written.why()}",
                       "the test user needs a writable home on the hub host")]
    bind_host, bind_port = doctor.hub_bind()
    listener = await _listen_if_free(bind_host, bind_port, nonce)
    submitted = time.time()
    job_id = None
    try:
        argv = [commands["sbatch"], "--parsable", "--job-name=ink-doctor", f"--output={output}",
                f"--chdir={home}", "--time=5", "--ntasks=1", "--mem=100M"]
        if partition:
            argv.append(f"--partition={partition}")
        sub = await run(as_user(user, argv), doctor.timeout, stdin=script.encode())
        if not sub.ok:
            return [Result("test job", FAIL, f"sbatch as {user}: {sub.why()}",
                           "check the partition, the user's Slurm association and limits")]
        job_id = sub.stdout.strip().split(";")[0]
        deadline = time.monotonic() + doctor.test_job_timeout
        state = ""
        while time.monotonic() < deadline:
            q = await run([commands["squeue"], "-h", "-j", job_id, "-o", "%T|%r"], doctor.timeout)
            state = q.stdout.strip()
            if (q.ok and not state) or "invalid job id" in q.stderr.lower():
                break  # gone from the queue (an ended job is purged after MinJobAge)
            await asyncio.sleep(1)
        else:
            return [Result("test job", FAIL, f"job {job_id} still {state or 'queued'} after "
                           f"{doctor.test_job_timeout:.0f} s", "see squeue/scontrol show job: the reason it waits")]
        finished = time.time()
        text = ""
        for _ in range(10):  # the node may still be closing the output file
            text = (await run(as_user(user, ["cat", output]), doctor.timeout)).stdout
            if "INK-DOCTOR " in text:
                break
            await asyncio.sleep(0.5)
    finally:
        if listener is not None:
            listener.close()
        if job_id:
            await run(as_user(user, [commands["scancel"], job_id]), doctor.timeout)
        await run(as_user(user, ["rm", "-f", marker, output]), doctor.timeout)
    line = next((ln for ln in text.splitlines() if ln.startswith("INK-DOCTOR ")), None)
    if line is None:
        return [Result("test job", FAIL, f"job {job_id} printed no report: {text.strip()[-300:] or '(no output)'}",
                       f"the hub's Python ({sys.executable}) must exist at the same path on the nodes")]
    try:
        report = json.loads(line.removeprefix("INK-DOCTOR "))
    except ValueError:
        return [Result("test job", FAIL, f"job {job_id}: unreadable report", "run the job by hand")]
    return judge(doctor, report, job_id, submitted, finished, bool(listener), nonce)


def judge(doctor, report: dict, job_id: str, submitted: float, finished: float, stand_in: bool,
          nonce: str) -> list[Result]:
    host = str(report.get("host", "?"))[:64]
    rows = [Result("test job", OK, f"job {job_id} ran on {host} as {doctor.test_user} "
                   f"({finished - submitted:.1f} s from submission to end)")]
    if report.get("marker"):
        rows.append(Result("shared home", OK, f"a file written on the hub host is seen on {host}"))
    else:
        rows.append(Result("shared home", FAIL, f"not seen on {host}: {str(report.get('marker_error', ''))[:200]}",
                           "mount the home directories at the same path on the hub host and the nodes"))
    url = doctor.hub_api_url
    body = str(report.get("hub_body", ""))
    if report.get("hub_status") == 200 and ('"version"' in body or nonce in body):
        who = "the doctor's stand-in: no hub is running" if stand_in and nonce in body else "the hub"
        rows.append(Result("hub API from a node", OK, f"{url} answered from {host} ({who})"))
    else:
        why = report.get("hub_error") or f"HTTP {report.get('hub_status')}: {body[:100]}"
        rows.append(Result("hub API from a node", FAIL, f"{url} from {host}: {str(why)[:200]}",
                           "set JupyterHub.hub_bind_url to an address the nodes reach (and hub_connect_url); "
                           "open the port in the firewall"))
    programs = report.get("programs") or {}
    gone = [name for name, path in programs.items() if not path]
    if gone:
        rows.append(Result("apps on nodes", FAIL, f"missing on {host}: {', '.join(gone)}",
                           "install the apps' stack on the nodes (scripts/install-apps or the worker image), "
                           "or fix InkSpawner.job_path/session_command"))
    else:
        rows.append(Result("apps on nodes", OK, f"{len(programs)} program(s) found on {host}"))
    images = report.get("images") or {}
    if images:
        absent = [p for p, present in images.items() if not present]
        rows.append(Result("images on nodes", FAIL if absent else OK,
                           f"missing on {host}: {', '.join(absent)}" if absent else f"{len(images)} present on {host}",
                           "copy the images to the nodes (CVMFS or a shared file system)"))
    node_time = float(report.get("time", 0))
    skew = max(submitted - node_time, node_time - finished, 0)
    rows.append(Result("clock skew: nodes", OK if skew <= doctor.max_clock_skew else FAIL,
                       f"{host} within {skew:.0f} s of the hub", "run chrony/ntpd on the hub host and the nodes"))
    return rows
