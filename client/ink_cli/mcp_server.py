"""The user's cluster as MCP tools: jobs, files, storage, sessions, cluster health.

Built with the official ``mcp`` SDK (``MCPServer``); every tool is a thin call of INK's REST
APIs with the user's own token, through :class:`~ink_cli.api.Client` — the job API in the
user's portal server (``/user/NAME/portal/ink/api/v1``), its file API (``.../ink/api/files``)
and the hub's API (``/hub/api``). So the job API's one validator decides what a job may be,
the token's scopes decide what may be done, and an agent never has more than the user's
rights: this module holds no rule of its own about jobs or files, only narrower limits:

- ``workspace``: every file tool is confined to one folder. Paths are checked here (no ``..``
  out, no ``~``, no XRootD URL) and, what matters, on the server: every file request carries
  ``X-Ink-Within: <workspace>`` and the file API refuses, after following every symlink, any
  path outside it (403).
- ``read_only``: the tools that write (submit, cancel, write a file, start or stop a session)
  are not registered at all, so an agent does not even see them.
- every call is logged (user, tool, outcome, duration) to the ``ink.mcp`` logger — never the
  arguments, file contents or the token.
- failures come back as tool errors (``isError``) with the API's own message, so the model
  reads why (``HTTP 400: cpus: 64 is outside the allowed range 1-2``).

``ink mcp`` serves it over stdio with the token of ``ink login``; the portal server serves the
same tools over streamable HTTP at ``/user/NAME/portal/ink/mcp`` (:mod:`ink_files_ext.mcp`),
with the caller's token taken from each request.
"""

from __future__ import annotations

import inspect
import logging
import posixpath
import time
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal
from urllib.parse import quote

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from .api import EXIT_AUTH, FILES, JOBS, Client, InkError

log = logging.getLogger("ink.mcp")

#: request header the file API confines a request with (ink_files_ext.files.roots.WITHIN_HEADER)
WITHIN_HEADER = "X-Ink-Within"

READS = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
ADDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESTROYS = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)

WRITING_TOOLS = ("submit_job", "cancel_job", "write_file", "start_session", "stop_session")

INSTRUCTIONS = """Tools for the user's INK Hub: batch jobs on the cluster (submit, list, status,
output, cancel, metrics), their files (list, stat, read, write, storage usage), interactive
sessions (list, start, stop) and the cluster's queues. Everything runs as the user, with the
user's token: a refusal (HTTP 4xx) comes back with the reason; read it and adjust the request.
Job ids are INK ids (12 hex digits) or the scheduler's ids."""


@dataclass
class Settings:
    """The safety modes and limits of one MCP server."""

    workspace: str | None = None  # confine every file tool to this folder (on the cluster)
    read_only: bool = False  # no writing tool at all
    max_read_bytes: int = 256 << 10  # read_text_file and file resources return at most this
    max_write_bytes: int = 4 << 20  # write_file accepts at most this
    max_entries: int = 1000  # list_files returns at most this many entries


class Caller:
    """Who calls and with which client: one fixed client (stdio) or one per request (HTTP)."""

    def __init__(self, client_for: Callable[[Context | None], tuple[Client, str]]):
        self.client_for = client_for


class Workspace:
    """The folder file tools are confined to, and the check of every path against it.

    The string check here gives a clear message early; the server's check (``X-Ink-Within``)
    is the one that counts, because only the server can follow symlinks."""

    def __init__(self, root: str | None):
        self.given = root
        self.real: str | None = None

    def headers(self) -> dict:
        return {WITHIN_HEADER: self.real or self.given} if self.given else {}

    def resolve_root(self, client: Client) -> None:
        if self.given and self.real is None:
            try:  # the server resolves it (home-relative, symlinks): the real folder, once; "."
                # is the workspace itself (a relative path would be taken inside the workspace)
                info = client.stat(".", headers={WITHIN_HEADER: self.given})
            except InkError as e:
                raise ToolError(f"workspace {self.given}: {e}") from None
            if info.get("type") != "directory":
                raise ToolError(f"workspace {self.given} is not a folder")
            self.real = info["path"]

    def path(self, client: Client, path: str | None) -> str:
        """The absolute path to ask the server for; refused here when plainly outside."""
        path = "" if path is None else path
        if not isinstance(path, str) or "\0" in path:
            raise ToolError("path: must be text without NUL")
        if not self.given:
            return path or "~"
        self.resolve_root(client)
        root = self.real
        if path.startswith("root://") or path.startswith("~"):
            raise ToolError(f"path: {path} is outside the workspace {root} (give a path inside it, "
                            "or relative to it)")
        full = posixpath.normpath(posixpath.join(root, path or "."))
        if not (full == root or full.startswith(root.rstrip("/") + "/")):
            raise ToolError(f"path: {path} is outside the workspace {root}")
        return full


def _describe_error(e: InkError) -> str:
    if e.exit_code == EXIT_AUTH or e.status == 401:
        return (f"{e} — the hub refused the token (invalid, expired or revoked): create a new "
                "token and run `ink login` again")
    return str(e)


def build_server(caller: Caller, settings: Settings | None = None, name: str = "ink") -> MCPServer:
    """An MCP server with INK's tools, resources and prompt (see the module docstring)."""
    settings = settings or Settings()
    workspace = Workspace(settings.workspace)
    mcp = MCPServer(name, instructions=INSTRUCTIONS, log_level="WARNING",
                    warn_on_duplicate_tools=True)

    def call(ctx: Context | None, tool: str, fn: Callable[[Client], Any]) -> Any:
        """Run one tool call: its client, its log line, its errors as tool errors."""
        started = time.monotonic()
        user = "?"
        try:
            client, user = caller.client_for(ctx)
            result = fn(client)
        except ToolError:
            log.info("ink-mcp user=%s tool=%s outcome=refused ms=%.0f", user, tool, _ms(started))
            raise
        except InkError as e:
            log.info("ink-mcp user=%s tool=%s outcome=error status=%s ms=%.0f", user, tool,
                     e.status or "-", _ms(started))
            raise ToolError(_describe_error(e)) from None
        except Exception as e:  # a bug or an unexpected answer: say so, without a traceback to the model
            log.exception("ink-mcp user=%s tool=%s outcome=failed", user, tool)
            raise ToolError(f"{tool} failed: {type(e).__name__}: {e}") from None
        log.info("ink-mcp user=%s tool=%s outcome=ok ms=%.0f", user, tool, _ms(started))
        return result

    def add(fn, annotations: ToolAnnotations, title: str, writes: bool = False):
        if writes and settings.read_only:
            return  # not even listed
        mcp.add_tool(fn, title=title, annotations=annotations, description=inspect.cleandoc(fn.__doc__ or ""))

    # ---- jobs ------------------------------------------------------------------------------

    def submit_job(
        ctx: Context,
        command: Annotated[list[str] | None, Field(description="program and arguments, e.g. [\"python\", \"fit.py\", \"--n\", \"10\"]; give this or script")] = None,
        script: Annotated[str | None, Field(description="a shell script to run (a #! line picks the interpreter); give this or command")] = None,
        name: Annotated[str | None, Field(description="job name: 1-32 lowercase letters, digits, - or _")] = None,
        experiment: Annotated[str | None, Field(description="experiment to run under (default: the user's first)")] = None,
        cpus: Annotated[int | None, Field(description="CPU cores", ge=1)] = None,
        memory: Annotated[str | None, Field(description="memory, e.g. 2G or 512M")] = None,
        gpus: Annotated[int | None, Field(description="GPUs", ge=0)] = None,
        walltime: Annotated[str | None, Field(description="wall-time limit, e.g. 1:00:00")] = None,
        image: Annotated[str | None, Field(description="one of the experiment's OS images")] = None,
        workdir: Annotated[str | None, Field(description="working directory on the cluster (default: the workspace, else the home)")] = None,
        env: Annotated[dict[str, str] | None, Field(description="extra environment variables")] = None,
    ) -> dict:
        """Submit a batch job to the cluster as the user. The site's profile decides what is
        allowed (experiments, cores, memory, wall time, images); a refusal names the field.
        Returns the job record: id, state, backend id, resources. Follow it with job_status and
        job_output."""
        def run(client: Client):
            body = {k: v for k, v in dict(command=command, script=script, name=name, experiment=experiment,
                                           cpus=cpus, memory=memory, gpus=gpus, walltime=walltime,
                                           image=image, env=env).items() if v is not None}
            if workdir is not None or workspace.given:
                body["workdir"] = workspace.path(client, workdir)
            return client.submit(body)
        return call(ctx, "submit_job", run)

    add(submit_job, ADDS, "Submit a batch job", writes=True)

    def list_jobs(
        ctx: Context,
        state: Annotated[Literal["all", "active", "ended"], Field(description="which jobs")] = "all",
        limit: Annotated[int, Field(description="most jobs to return, newest first", ge=1, le=1000)] = 50,
    ) -> dict:
        """The user's INK batch jobs (submitted through INK), newest first, with state, exit
        code, node and resources."""
        return call(ctx, "list_jobs", lambda client: {"jobs": client.jobs(state, limit)})

    add(list_jobs, READS, "List my batch jobs")

    def job_status(ctx: Context, job_id: Annotated[str, Field(description="INK job id or the scheduler's job id")]) -> dict:
        """One job's current record: state (pending, running, completed, failed, cancelled),
        queue reason, node, exit code, times, resources and where its output is."""
        return call(ctx, "job_status", lambda client: client.job(job_id))

    add(job_status, READS, "Job status")

    def job_output(
        ctx: Context,
        job_id: Annotated[str, Field(description="INK job id or the scheduler's job id")],
        stream: Annotated[Literal["stdout", "stderr"], Field(description="which output")] = "stdout",
        offset: Annotated[int, Field(description="byte offset to read from; a negative value counts from the end", )] = 0,
        limit: Annotated[int, Field(description="most bytes to return", ge=1, le=1 << 20)] = 64 << 10,
    ) -> dict:
        """A slice of a job's stdout or stderr (text). Returns data, the offset it starts at,
        next_offset, the file's size and the job's state; call again from next_offset to follow
        a running job. offset=-4096 gives the last 4 KiB."""
        def run(client: Client):
            start = offset
            if offset < 0:
                _, size, _ = client.output(job_id, stream, 0, 1)
                start = max(0, size + offset)
            data, size, state = client.output(job_id, stream, start, limit)
            return {"job_id": job_id, "stream": stream, "offset": start, "next_offset": start + len(data),
                    "size": size, "state": state, "complete": start + len(data) >= size,
                    "data": data.decode("utf-8", errors="replace")}
        return call(ctx, "job_output", run)

    add(job_output, READS, "Read job output")

    def cancel_job(ctx: Context, job_id: Annotated[str, Field(description="INK job id or the scheduler's job id")]) -> dict:
        """Cancel one of the user's running or queued jobs (it cannot be undone). Returns the
        job's record after the cancel."""
        return call(ctx, "cancel_job", lambda client: client.cancel(job_id))

    add(cancel_job, DESTROYS, "Cancel a batch job", writes=True)

    def job_metrics(ctx: Context, job_id: Annotated[str, Field(description="INK job id or the scheduler's job id")]) -> dict:
        """Job Lens figures of one job (CPU, memory, I/O, GPU; a summary once it has ended)
        when the hub offers them; otherwise says they are not available."""
        def run(client: Client):
            key = quote(job_id, safe="")
            record = client.job(job_id)  # 404 for a job that is not the user's
            try:
                figures = client.portal("GET", f"{JOBS}/jobs/{key}/metrics").json()
                return {"available": True, **figures}
            except InkError as e:
                if e.status != 404:
                    raise
            summary = record.get("metrics") or record.get("summary")
            if summary:
                return {"job_id": record["id"], "available": True, "summary": summary}
            return {"job_id": record["id"], "available": False,
                    "message": "Job Lens metrics are not available on this hub (its job API has no "
                               "metrics for this job); job_status and job_output still work"}
        return call(ctx, "job_metrics", run)

    add(job_metrics, READS, "Job metrics (Job Lens)")

    # ---- files -----------------------------------------------------------------------------

    def list_files(
        ctx: Context,
        path: Annotated[str, Field(description="folder: absolute, or relative to the workspace (else to the home)")] = "",
        hidden: Annotated[bool, Field(description="include names starting with a dot")] = False,
    ) -> dict:
        """The entries of a folder on the cluster (folders first): name, type, size, mtime,
        permissions, owner."""
        def run(client: Client):
            target = workspace.path(client, path)
            listing = client.list_dir(target, hidden, headers=workspace.headers(), most=settings.max_entries)
            return {"path": listing.get("path", target), "total": listing.get("total"),
                    "truncated": (listing.get("total") or 0) > len(listing["entries"]),
                    "entries": [{k: e.get(k) for k in ("name", "type", "size", "mtime", "perms", "owner", "link")}
                                for e in listing["entries"]]}
        return call(ctx, "list_files", run)

    add(list_files, READS, "List a folder")

    def stat(ctx: Context, path: Annotated[str, Field(description="file or folder: absolute, or relative to the workspace (else to the home)")]) -> dict:
        """One file or folder: type, size, mtime, permissions, owner, whether it is writable."""
        return call(ctx, "stat", lambda client: client.stat(workspace.path(client, path), headers=workspace.headers()))

    add(stat, READS, "File information")

    def read_text(client: Client, path: str, offset: int, limit: int) -> dict:
        target = workspace.path(client, path)
        info = client.stat(target, headers=workspace.headers())
        if info.get("type") != "file":
            raise ToolError(f"path: {path} is a {info.get('type')}, not a file")
        size = int(info.get("size") or 0)
        limit = min(limit, settings.max_read_bytes)
        if offset >= size:
            data = b""
        else:
            end = min(size, offset + limit) - 1
            r = client.portal("GET", f"{FILES}/download", params={"path": target},
                              headers={**workspace.headers(), "Range": f"bytes={offset}-{end}"}, ok=(200, 206))
            data = r.content[:limit] if r.status_code == 206 else r.content[offset:offset + limit]
        if b"\0" in data:
            raise ToolError(f"path: {path} is not a text file (it contains NUL bytes)")
        text = data.decode("utf-8", errors="replace")
        return {"path": info.get("path", target), "size": size, "offset": offset,
                "next_offset": offset + len(data), "truncated": offset + len(data) < size, "text": text}

    def read_text_file(
        ctx: Context,
        path: Annotated[str, Field(description="file: absolute, or relative to the workspace (else to the home)")],
        offset: Annotated[int, Field(description="byte offset to start at", ge=0)] = 0,
        limit: Annotated[int, Field(description="most bytes (capped by the server's read limit)", ge=1)] = 256 << 10,
    ) -> dict:
        """Read a text file on the cluster, at most the read limit per call (256 KiB by
        default); 'truncated' says whether more follows (continue from next_offset). Binary
        files are refused."""
        return call(ctx, "read_text_file", lambda client: read_text(client, path, offset, limit))

    add(read_text_file, READS, "Read a text file")

    def write_file(
        ctx: Context,
        path: Annotated[str, Field(description="file to write: absolute, or relative to the workspace (else to the home)")],
        content: Annotated[str, Field(description="the whole text of the file (UTF-8)")],
        overwrite: Annotated[bool, Field(description="replace the file if it exists")] = False,
    ) -> dict:
        """Write a text file on the cluster as the user (atomically: the file appears when
        complete). Refused if it exists and overwrite is false, and outside writable places."""
        def run(client: Client):
            data = content.encode("utf-8")
            if len(data) > settings.max_write_bytes:
                raise ToolError(f"content: {len(data)} bytes is more than the limit of {settings.max_write_bytes}")
            target = workspace.path(client, path)
            headers = workspace.headers()
            opened = client.portal("POST", f"{FILES}/uploads", headers=headers,
                                   json={"path": target, "size": len(data), "overwrite": overwrite}).json()
            if data and not opened.get("done"):
                client.portal("PUT", f"{FILES}/uploads/{quote(str(opened['id']), safe='')}", data=data,
                              headers={**headers, "Content-Type": "application/octet-stream",
                                       "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"})
            return client.stat(target, headers=headers)
        return call(ctx, "write_file", run)

    add(write_file, DESTROYS, "Write a file", writes=True)

    def storage_usage(ctx: Context) -> dict:
        """Size, used and free bytes of the file system under each storage root the user has
        (home, site storage such as /eos or /lustre; only the workspace in workspace mode)."""
        def run(client: Client):
            if workspace.given:
                workspace.resolve_root(client)
            return client.usage(headers=workspace.headers())
        return call(ctx, "storage_usage", run)

    add(storage_usage, READS, "Storage usage")

    # ---- sessions and the cluster ----------------------------------------------------------

    def list_sessions(ctx: Context) -> dict:
        """The user's interactive sessions (JupyterLab, VS Code, desktop, ...) and the portal:
        ready, pending or stopped, with their URLs."""
        def run(client: Client):
            servers = client.servers()
            return {"sessions": [{"app": name or "(default)", "ready": bool(s.get("ready")),
                                  "pending": s.get("pending"), "started": s.get("started"),
                                  "url": client.hub + (s.get("url") or "")}
                                 for name, s in sorted(servers.items())]}
        return call(ctx, "list_sessions", run)

    add(list_sessions, READS, "List my sessions")

    def start_session(
        ctx: Context,
        app: Annotated[str, Field(description="the app, e.g. jupyter, vscode, desktop")],
        experiment: Annotated[str | None, Field(description="experiment (default: the user's first)")] = None,
        cpus: Annotated[int | None, Field(ge=1, description="CPU cores")] = None,
        memory: Annotated[str | None, Field(description="memory, e.g. 4G")] = None,
        walltime: Annotated[str | None, Field(description="wall time, e.g. 4:00:00")] = None,
        image: Annotated[str | None, Field(description="OS image")] = None,
        wait: Annotated[bool, Field(description="wait until it is ready (up to 10 minutes)")] = False,
    ) -> dict:
        """Start an interactive session (a batch job running the app) for the user; the site's
        catalogue decides what is allowed. Returns its state and URL."""
        def run(client: Client):
            options = {k: v for k, v in dict(experiment=experiment, cpus=cpus, memory=memory,
                                              walltime=walltime, image=image).items() if v is not None}
            server = client.start_session(app, options, wait=wait, timeout=600)
            return {"app": app, "ready": bool(server.get("ready")), "pending": server.get("pending"),
                    "url": client.hub + (server.get("url") or "")}
        return call(ctx, "start_session", run)

    add(start_session, ADDS, "Start a session", writes=True)

    def stop_session(ctx: Context, app: Annotated[str, Field(description="the app whose session to stop")]) -> dict:
        """Stop one of the user's sessions (its batch job is cancelled; unsaved work in it is
        lost)."""
        def run(client: Client):
            client.stop_session(app, wait=True, timeout=120)
            return {"app": app, "stopped": True}
        return call(ctx, "stop_session", run)

    add(stop_session, DESTROYS, "Stop a session", writes=True)

    def cluster_overview(ctx: Context) -> dict:
        """The cluster's load: running and queued jobs per partition (Slurm) or accounting group
        (HTCondor), from the hub's shared sampler (age_s says how old the figures are)."""
        return call(ctx, "cluster_overview", lambda client: client.cluster())

    add(cluster_overview, READS, "Cluster overview")

    # ---- resources and the prompt ----------------------------------------------------------

    @mcp.resource("ink://files/{+path}", name="file", title="A text file on the cluster",
                  description="A text file, relative to the workspace (else to the home), at most "
                              "the read limit.", mime_type="text/plain")
    def file_resource(path: str, ctx: Context) -> str:
        result = call(ctx, "resource:file", lambda client: read_text(client, path, 0, settings.max_read_bytes))
        return result["text"]

    @mcp.resource("ink://jobs/{job_id}/{stream}", name="job-output", title="A job's output",
                  description="The last part of a job's stdout or stderr.", mime_type="text/plain")
    def job_output_resource(job_id: str, stream: str, ctx: Context) -> str:
        if stream not in ("stdout", "stderr"):
            raise ToolError("stream: stdout or stderr")
        def run(client: Client):
            _, size, _ = client.output(job_id, stream, 0, 1)
            data, _, _ = client.output(job_id, stream, max(0, size - settings.max_read_bytes),
                                       settings.max_read_bytes)
            return data.decode("utf-8", errors="replace")
        return call(ctx, "resource:job-output", run)

    @mcp.prompt(name="why_did_my_job_fail", title="Why did my job fail?",
                description="Explain why a batch job failed, from its record and the end of its output.")
    def why_did_my_job_fail(job_id: str, ctx: Context) -> str:
        def run(client: Client):
            record = client.job(job_id)
            tails = {}
            for stream in ("stderr", "stdout"):
                _, size, _ = client.output(job_id, stream, 0, 1)
                data, _, _ = client.output(job_id, stream, max(0, size - 4096), 4096)
                tails[stream] = data.decode("utf-8", errors="replace")
            return record, tails
        try:
            record, tails = call(ctx, "prompt:why_did_my_job_fail", run)
        except ToolError as e:
            return (f"I want to know why my INK batch job {job_id} failed, but its record could not be "
                    f"read ({e}). Use the job_status and job_output tools to find out, then explain.")
        keys = ("id", "name", "state", "reason", "exit_code", "backend", "backend_id", "node",
                "cpus", "memory_mb", "walltime_s", "submitted", "started", "ended", "command", "workdir")
        facts = "\n".join(f"- {k}: {record.get(k)}" for k in keys if k in record)
        return (f"My INK batch job {record.get('id', job_id)} did not do what I expected. Explain why it "
                "failed (or why it is still waiting), in plain words, and what I should change. "
                "Consider the exit code (e.g. 137 = killed, often out of memory; 140/wall time = "
                "time limit), the scheduler's reason, and the errors at the end of its output. Use "
                "job_metrics if it is available, and job_output or read_text_file for more.\n\n"
                f"Job record:\n{facts}\n\nEnd of stderr:\n```\n{tails['stderr'] or '(empty)'}\n```\n\n"
                f"End of stdout:\n```\n{tails['stdout'] or '(empty)'}\n```")

    return mcp


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000
