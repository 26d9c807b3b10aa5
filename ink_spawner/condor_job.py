"""ink-condor-job: submit and remove INK session jobs on HTCondor, run as the session's user.

The hub runs this through runuser, so HTCondor sees the user as the job's Owner and applies
its own authorization: a user can only ever submit or remove their own jobs. The request
arrives as JSON on stdin, never in argv:

    {"description": {<submit commands>}, "env": {<session environment>}, "env_file": PATH}

The environment (it holds the server's API token) goes to ``env_file``, written 0600 in a 0700
directory, because HTCondor job ads are readable by every user of the pool. The reply on stdout
is JSON: ``{"job_id": "123.0"}``, or ``{"error": "..."}`` with exit code 1.

Runs on the hub host; imports nothing of the hub.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile

_JOB_ID_RE = re.compile(r"^([0-9]+)\.([0-9]+)$")


def open_schedd(schedd_name: str = ""):
    """A client of the local schedd, or of the named one (located through the collector)."""
    import htcondor2

    if not schedd_name:
        return htcondor2.Schedd()
    return htcondor2.Schedd(htcondor2.Collector().locate(htcondor2.DaemonType.Schedd, schedd_name))


def write_private_json(path: str, data: dict) -> None:
    """Write ``data`` to ``path`` readable by the user only (0700 directory, 0600 file)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".ink-env-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def submit(args, request: dict) -> dict:
    import htcondor2

    description = request["description"]
    env = request["env"]
    env_file = request["env_file"]
    if not isinstance(description, dict) or not isinstance(env, dict) or not os.path.isabs(env_file):
        raise ValueError("request needs a description, an env and an absolute env_file")
    write_private_json(env_file, env)
    try:
        schedd = open_schedd(args.schedd_name)
        result = schedd.submit(htcondor2.Submit({str(k): str(v) for k, v in description.items()}),
                               count=1)
    except BaseException:
        os.unlink(env_file)  # no job will read it
        raise
    return {"job_id": f"{result.cluster()}.0"}


def remove(args) -> dict:
    import htcondor2

    m = _JOB_ID_RE.match(args.job_id)
    if not m:
        raise ValueError(f"invalid job id {args.job_id!r}")
    schedd = open_schedd(args.schedd_name)
    schedd.act(htcondor2.JobAction.Remove, f"ClusterId == {int(m[1])} && ProcId == {int(m[2])}")
    return {"removed": args.job_id}


def extend(args) -> dict:
    """Raise the job's MaxWallTime (its periodic_remove reads it); only the owner may."""
    m = _JOB_ID_RE.match(args.job_id)
    if not m or not args.seconds.isdigit():
        raise ValueError("usage: extend CLUSTER.PROC SECONDS")
    schedd = open_schedd(args.schedd_name)
    import htcondor2

    # SetDirty forwards the edit to the running job's shadow (condor_qedit -forward), which is
    # where periodic_remove is evaluated
    schedd.edit(f"ClusterId == {int(m[1])} && ProcId == {int(m[2])}", "MaxWallTime",
                str(int(args.seconds)), flags=htcondor2.TransactionFlag.SetDirty)
    return {"extended": args.job_id, "MaxWallTime": int(args.seconds)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ink-condor-job", description=__doc__.split("\n")[0])
    parser.add_argument("--schedd-name", default="", help="remote schedd (located via the collector)")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("submit", help="submit the job described by the JSON request on stdin")
    rm = sub.add_parser("remove", help="remove a job")
    rm.add_argument("job_id")
    ext = sub.add_parser("extend", help="raise a running job's wall time")
    ext.add_argument("job_id")
    ext.add_argument("seconds")
    args = parser.parse_args(argv)
    try:
        if args.action == "submit":
            reply = submit(args, json.load(sys.stdin))
        elif args.action == "extend":
            reply = extend(args)
        else:
            reply = remove(args)
    except Exception as e:  # report every failure as JSON; the hub shows the message
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1
    print(json.dumps(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
