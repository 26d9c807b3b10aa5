"""The job API's handlers: ``/ink/api/v1/...`` in the user's own server, as the user.

Every request is authenticated and authorized by :mod:`ink_files_ext.api_auth` (token checked with the hub
without cache: 401 at once when expired or revoked; INK scope of the action: 403 naming it).
Errors are JSON ``{"message": ...}`` with a real status code (jupyter-server's APIHandler).
"""

from __future__ import annotations

import asyncio
import json
import os
import re

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ink_spawner.validator import Refused, check_job

from .. import api_auth as auth
from .. import openapi
from ..scopes import SCOPE_JOBS, SCOPE_JOBS_READ
from .store import ACTIVE, FINAL, public

API = "/ink/api/v1"
_NUMBER = re.compile(r"^[0-9]{1,15}$")  # ASCII digits only (str.isdigit() accepts '²')
OUTPUT_LIMIT = 4 << 20  # most bytes of output one request returns


class JobsAPIHandler(ExtensionHandlerMixin, APIHandler):
    """Base: the hub decides who may call, INK's scopes decide what they may do."""

    required_scope: str | None = None  # per handler; None: any caller allowed into this server

    @property
    def jobs(self):
        """The job service of this server (:class:`~ink_files_ext.jobs.service.JobService`)."""
        return self.settings["ink_jobs_service"]

    def check_xsrf_cookie(self):
        # A token in the Authorization header is not something a browser sends on its own,
        # so it needs no XSRF check; cookie-authenticated browser requests keep it (HubOAuth
        # calls this while it looks at the cookie, before any user is known, and ignores a
        # cookie that fails it). A request that ends up with no user at all is refused with
        # 401 in prepare(), before anything happens.
        if auth.header_token(self):
            return None
        if hasattr(self, "_jupyter_current_user") and self._jupyter_current_user is None:
            return None
        return super().check_xsrf_cookie()

    def write_error(self, status_code: int, **kwargs):
        if status_code == 405:  # RFC 9110: say what is allowed
            allowed = [m.upper() for m in ("get", "post", "put", "patch", "delete")
                       if getattr(type(self), m) is not getattr(APIHandler, m)]
            self.set_header("Allow", ", ".join(allowed + ["OPTIONS"]))
        super().write_error(status_code, **kwargs)

    def fail(self, status: int, message: str):
        return web.HTTPError(status, message)

    async def prepare(self):
        await super().prepare()
        if self.request.method == "OPTIONS":
            return
        self.hub_user = await auth.authenticate(self)
        if not self.required_scope:
            return
        if auth.header_token(self):
            auth.require_scope(self, self.hub_user, self.required_scope)
        else:
            # the browser's login (the Jobs page): the owner at their own server may do what
            # they could do in a shell there, as with jupyter-server's own APIs; XSRF-checked
            # for every unsafe method (check_xsrf_cookie). Another user the server is shared
            # with is not the owner: 403.
            auth.require_owner(self, self.hub_user)

    def require_profile(self):
        if self.jobs.profile is None:
            raise self.fail(503, "no batch profile: this server was not started by an INK hub "
                            "for the job API (your portal server is)")
        return self.jobs.profile

    async def get_record(self, key: str) -> dict:
        record = await asyncio.to_thread(self.jobs.store.find, key)
        if record is None:
            raise self.fail(404, f"no job {key!r} among your INK jobs")
        return record

    def json_body(self):
        try:
            return json.loads(self.request.body or b"")
        except (ValueError, UnicodeDecodeError):
            raise self.fail(400, "body: must be a JSON object") from None

    def write_json(self, data, status: int = 200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))


class InfoHandler(JobsAPIHandler):
    """GET /ink/api/v1/ — who you are, which scopes your token has, what you may submit."""

    @allow_unauthenticated
    async def get(self):
        service = self.jobs
        scopes = sorted({s.split("!")[0] for s in self.hub_user.get("scopes", [])
                         if s.startswith("custom:ink:")})
        self.write_json({
            "version": "1",
            "user": service.owner,
            "scopes": scopes,
            "profile": service.profile.public() if service.profile else None,
        })


class OpenAPIHandler(ExtensionHandlerMixin, APIHandler):
    """GET /ink/api/v1/openapi.json — the API's OpenAPI 3 document (no secret in it)."""

    @allow_unauthenticated
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(openapi.document(self.base_url)))


class JobsHandler(JobsAPIHandler):
    """GET: the user's INK jobs; POST: submit one."""

    @property
    def required_scope(self):
        return SCOPE_JOBS if self.request.method == "POST" else SCOPE_JOBS_READ

    @allow_unauthenticated
    async def get(self):
        state = self.get_argument("state", "all")
        if state not in ("all", "active", "ended"):
            raise self.fail(400, "state: must be 'all', 'active' or 'ended'")
        limit_text = self.get_argument("limit", "200")
        if not _NUMBER.match(limit_text) or not 1 <= int(limit_text) <= 1000:
            raise self.fail(400, "limit: must be an integer from 1 to 1000")
        records = await asyncio.to_thread(self.jobs.store.all)  # many small files: off the loop
        records = await self.jobs.refresh(records)
        if state == "active":
            records = [r for r in records if r["state"] in ACTIVE]
        elif state == "ended":
            records = [r for r in records if r["state"] in FINAL]
        self.write_json({"jobs": [public(r) for r in records[: int(limit_text)]]})

    @allow_unauthenticated
    async def post(self):
        profile = self.require_profile()
        service = self.jobs
        body = self.json_body()
        try:
            # the one validator; its workdir check stats a path: off the event loop
            checked = await asyncio.to_thread(check_job, profile, body, home=service.home)
        except Refused as e:
            raise self.fail(400, str(e)) from None
        record = await service.submit(checked)
        self.set_header("Location", f"{self.base_url.rstrip('/')}{API}/jobs/{record['id']}")
        self.write_json(public(record), status=201)


class JobHandler(JobsAPIHandler):
    """GET: one job; DELETE: cancel it."""

    @property
    def required_scope(self):
        return SCOPE_JOBS if self.request.method == "DELETE" else SCOPE_JOBS_READ

    @allow_unauthenticated
    async def get(self, key):
        record = await self.get_record(key)
        (record,) = await self.jobs.refresh([record])
        self.write_json(public(record))

    @allow_unauthenticated
    async def delete(self, key):
        record = await self.get_record(key)
        (record,) = await self.jobs.refresh([record])
        if record["state"] in FINAL:
            raise self.fail(409, f"job {record['id']} has already ended ({record['state']})")
        record = await self.jobs.cancel(record)
        self.write_json(public(record), status=202)


class OutputHandler(JobsAPIHandler):
    """GET /jobs/ID/stdout|stderr|script?offset=N&limit=M — a job's output (or script) from an offset.

    Headers say the file's size and the job's state, so a client can follow a running job by
    asking again from ``offset + len(body)`` until the state is final and nothing is left."""

    required_scope = SCOPE_JOBS_READ

    @allow_unauthenticated
    async def get(self, key, stream):
        if stream not in ("stdout", "stderr", "script"):
            raise self.fail(404, f"no output {stream!r}: jobs have 'stdout', 'stderr' and 'script'")
        record = await self.get_record(key)
        offset_text = self.get_argument("offset", "0")
        limit_text = self.get_argument("limit", str(OUTPUT_LIMIT))
        if not _NUMBER.match(offset_text):
            raise self.fail(400, "offset: must be a non-negative integer")
        if not _NUMBER.match(limit_text) or not 1 <= int(limit_text) <= OUTPUT_LIMIT:
            raise self.fail(400, f"limit: must be an integer from 1 to {OUTPUT_LIMIT}")
        (record,) = await self.jobs.refresh([record])
        # the script is the job's own file, kept for resubmitting (404 for a command job)
        path = self.jobs.store.path(record["id"], "script") if stream == "script" else record[f"{stream}_path"]
        if stream == "script" and not record.get("script"):
            raise self.fail(404, f"job {record['id']} ran a command, not a script")
        data, size = await asyncio.to_thread(_read_from, path, int(offset_text), int(limit_text))
        self.set_header("X-Ink-Size", str(size))
        self.set_header("X-Ink-Job-State", record["state"])
        self.finish(data, set_content_type="text/plain; charset=utf-8")


def _read_from(path: str, offset: int, limit: int) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(min(offset, size))
            return f.read(limit), size
    except FileNotFoundError:
        return b"", 0


def handlers() -> list[tuple[str, type]]:
    from .metrics import metrics_handlers  # imports this module

    return [
        *metrics_handlers(),
        (rf"{API}/?", InfoHandler),
        (rf"{API}/openapi\.json", OpenAPIHandler),
        (rf"{API}/jobs/?", JobsHandler),
        (rf"{API}/jobs/([^/]+)/([^/]+)", OutputHandler),
        (rf"{API}/jobs/([^/]+)/?", JobHandler),
        (rf"{API}/.*", NotFoundHandler),
    ]


class NotFoundHandler(JobsAPIHandler):
    """Anything else under the API: a JSON 404, not jupyter-server's HTML page."""

    @allow_unauthenticated
    def get(self):
        raise self.fail(404, f"no such API path: {self.request.path}")

    post = put = patch = delete = get


