"""The OpenAPI 3 document of INK's user-server APIs, served at ``/ink/api/v1/openapi.json``.

Kept true by ``tests/test_workflow_openapi.py`` (every route is documented and every documented
path has a route; responses of the real API validate against these schemas) and by
schemathesis run against the served document.

The document is assembled from sections: :func:`jobs_paths` (this package) and
:func:`files_paths` — the file manager's API (``/ink/api/files/...``) adds its paths there.
"""

from __future__ import annotations

from ink_spawner.jobspec import NAME_RE
from .scopes import SCOPE_FILES, SCOPE_FILES_READ, SCOPE_JOBS, SCOPE_JOBS_READ

V1 = "/ink/api/v1"


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


ERRORS = {
    "401": _error("No token, or the token is invalid, expired or revoked"),
    "403": _error("The token may not access this server, or lacks the INK scope of the action"),
}


def _json(ref: str, description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


JOB_ID = {"name": "job_id", "in": "path", "required": True,
          "description": "INK job id (12 hex digits) or the backend's job id (e.g. the Slurm job number)",
          "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._-]+$"}}

NULLABLE_STR = {"type": ["string", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}

SCHEMAS = {
    "Error": {
        "type": "object", "required": ["message"],
        "properties": {"message": {"type": "string", "description": "what is wrong, naming the field"},
                       "reason": NULLABLE_STR},
    },
    "JobRequest": {
        "type": "object", "additionalProperties": False,
        "description": "Give `command` or `script`. Resources default to the experiment's defaults "
                       "and must stay within its limits (else 400 naming the field).",
        "properties": {
            "command": {"type": "array", "minItems": 1, "maxItems": 4096, "items": {"type": "string"},
                        "description": "argv run as is (no shell)"},
            "script": {"type": "string", "minLength": 1,
                       "description": "script text; run with its #! interpreter, else /bin/sh. "
                                      "#SBATCH lines are not read: give resources as fields"},
            "name": {"type": "string", "pattern": NAME_RE.pattern, "default": "job"},
            "experiment": {"type": "string", "description": "default: the first of yours"},
            "cpus": {"type": "integer", "minimum": 1},
            "memory": {"type": "string", "examples": ["2G", "512M"]},
            "gpus": {"type": "integer", "minimum": 0},
            "walltime": {"type": "string", "examples": ["1:00:00", "1-00:00:00"]},
            "image": {"type": "string", "description": "one of the experiment's images"},
            "workdir": {"type": "string", "description": "absolute, or relative to your home (default)"},
            "env": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "extra environment variables (not INK_*, JUPYTERHUB_*, SLURM_*)"},
        },
    },
    "Job": {
        "type": "object",
        "required": ["id", "name", "state", "reason", "exit_code", "backend", "backend_id", "node",
                     "experiment", "command", "script", "cpus", "memory_mb", "gpus", "walltime_s",
                     "image", "workdir", "stdout_path", "stderr_path", "submitted", "ended"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{12}$"},
            "name": {"type": "string"},
            "state": {"type": "string", "enum": ["pending", "running", "completed", "failed", "cancelled"]},
            "reason": NULLABLE_STR,
            "exit_code": NULLABLE_INT,
            "backend": {"type": "string"},
            "backend_id": {"type": "string"},
            "node": NULLABLE_STR,
            "experiment": {"type": "string"},
            "command": {"type": ["array", "null"], "items": {"type": "string"}},
            "script": {"type": "boolean"},
            "cpus": {"type": "integer"},
            "memory_mb": {"type": "integer"},
            "gpus": {"type": "integer"},
            "walltime_s": {"type": "integer"},
            "image": NULLABLE_STR,
            "workdir": {"type": "string"},
            "stdout_path": {"type": "string"},
            "stderr_path": {"type": "string"},
            "submitted": {"type": "string", "format": "date-time"},
            "ended": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "JobList": {
        "type": "object", "required": ["jobs"],
        "properties": {"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}},
    },
    "ApiInfo": {
        "type": "object", "required": ["version", "user", "scopes", "profile"],
        "properties": {
            "version": {"type": "string"},
            "user": {"type": "string"},
            "scopes": {"type": "array", "items": {"type": "string"},
                       "description": "the INK scopes of the calling token"},
            "profile": {"type": ["object", "null"],
                        "description": "backend and experiments (defaults, limits, images) you may submit to"},
        },
    },
}


def jobs_paths() -> dict:
    read, write = [{"hubToken": [SCOPE_JOBS_READ]}], [{"hubToken": [SCOPE_JOBS]}]
    output = {
        "get": {
            "operationId": "readJobOutput", "summary": "Bytes of a job's stdout or stderr from an offset",
            "security": read,
            "parameters": [
                JOB_ID,
                {"name": "stream", "in": "path", "required": True,
                 "description": "stdout, stderr, or the job's own script (for resubmitting)",
                 "schema": {"type": "string", "enum": ["stdout", "stderr", "script"]}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 4 << 20, "default": 4 << 20}},
            ],
            "responses": {
                "200": {"description": "the bytes from `offset` (empty when there is nothing new)",
                        "headers": {"X-Ink-Size": {"description": "the file's size now",
                                                   "schema": {"type": "integer"}},
                                    "X-Ink-Job-State": {"description": "the job's state",
                                                        "schema": {"type": "string"}}},
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "400": _error("Invalid offset or limit"), **ERRORS,
                "404": _error("No such job among yours"),
            },
        },
    }
    return {
        f"{V1}/": {"get": {
            "operationId": "apiInfo", "summary": "Who you are, your token's INK scopes, what you may submit",
            "security": [{"hubToken": []}],
            "responses": {"200": _json("ApiInfo", "API information"), **ERRORS},
        }},
        f"{V1}/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document", "security": [],
            "responses": {"200": {"description": "OpenAPI 3 document",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}},
        }},
        f"{V1}/jobs": {
            "get": {
                "operationId": "listJobs", "summary": "Your INK batch jobs, newest first", "security": read,
                "parameters": [
                    {"name": "state", "in": "query",
                     "schema": {"type": "string", "enum": ["all", "active", "ended"], "default": "all"}},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200}},
                ],
                "responses": {"200": _json("JobList", "jobs"), "400": _error("Invalid state or limit"),
                              **ERRORS},
            },
            "post": {
                "operationId": "submitJob", "summary": "Submit a batch job (runs as you)", "security": write,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}}}},
                "responses": {
                    "201": {**_json("Job", "submitted"),
                            "headers": {"Location": {"schema": {"type": "string"}}}},
                    "400": _error("Invalid request, or outside your profile (the message names the field)"),
                    **ERRORS,
                    "422": _error("The scheduler refused the job"),
                    "503": _error("The scheduler is not reachable, or no batch profile in this server"),
                },
            },
        },
        f"{V1}/jobs/{{job_id}}": {
            "parameters": [JOB_ID],
            "get": {"operationId": "showJob", "summary": "One job", "security": read,
                    "responses": {"200": _json("Job", "the job"), **ERRORS,
                                  "404": _error("No such job among yours")}},
            "delete": {"operationId": "cancelJob", "summary": "Cancel a job", "security": write,
                       "responses": {"202": _json("Job", "cancelled"), **ERRORS,
                                     "404": _error("No such job among yours"),
                                     "409": _error("The job has already ended"),
                                     "503": _error("The scheduler is not reachable")}},
        },
        f"{V1}/jobs/{{job_id}}/metrics": {"get": {
            "operationId": "jobMetrics", "summary": "Job Lens: the job's samples, summary and efficiency",
            "security": read, "parameters": [JOB_ID, METRICS_LIMIT],
            "responses": {"200": _json("Metrics", "samples and summary"), **ERRORS,
                          "400": _error("Invalid limit"), "404": _error("No such job among yours")}}},
        f"{V1}/sessions/{{name}}/metrics": {"get": {
            "operationId": "sessionMetrics", "summary": "Job Lens: your session of app NAME",
            "security": read,
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}, METRICS_LIMIT],
            "responses": {"200": _json("Metrics", "samples and summary"), **ERRORS,
                          "400": _error("Invalid name or limit"),
                          "404": _error("No Job Lens figures for that session")}}},
        f"{V1}/jobs/{{job_id}}/{{stream}}": output,
    }


METRICS_LIMIT = {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 720}}


FILES = "/ink/api/files"
PATH_QUERY = {"name": "path", "in": "query", "required": True,
              "description": "absolute path, or relative to your home (`~` works); must lie in your "
                             "home or one of the site's storage roots (root:// for XRootD roots)",
              "schema": {"type": "string", "minLength": 1, "maxLength": 1024}}
FILES_ERRORS = {**ERRORS, "400": _error("Invalid input (the message names the field)"),
                "404": _error("No such file or folder")}

SCHEMAS.update({
    "Metrics": {
        "type": "object", "required": ["samples", "summary"],
        "properties": {"samples": {"type": "array", "items": {"type": "object"}},
                       "summary": {"type": ["object", "null"]}, "efficiency": NULLABLE_STR,
                       "interval": {"type": ["number", "null"]}, "source": NULLABLE_STR,
                       "scheduler": {"$ref": "#/components/schemas/SchedulerUsage"}},
    },
    "SchedulerUsage": {
        "type": "object", "required": ["available"],
        "description": "What the scheduler itself counted for a job (job metrics only): Slurm "
                       "`sstat` of its running steps (asked at most every `usage_interval`, "
                       "for all running jobs being looked at, in one call), or HTCondor's job ad "
                       "(as the shadow last updated it). An ended job keeps the last figures seen "
                       "while it ran; Slurm's `sacct` needs the accounting database and is not read. "
                       "Seconds and bytes.",
        "properties": {
            "available": {"type": "boolean"},
            "source": {"type": ["string", "null"], "enum": ["sstat", "job ad", None]},
            "reason": {"type": "string", "description": "why there are no figures (yet)"},
            "at": {"type": "number", "description": "when sstat answered (Unix time)"},
            "cpu_s": {"type": "number", "description": "CPU seconds of all the job's tasks"},
            "cpu_user_s": {"type": "number"}, "cpu_sys_s": {"type": "number"},
            "rss_max": {"type": "integer", "description": "Slurm MaxRSS: the largest task's peak"},
            "rss": {"type": "integer", "description": "HTCondor ResidentSetSize"},
            "memory_peak": {"type": "integer", "description": "HTCondor MemoryUsage"},
            "disk_read": {"type": "integer"}, "disk_write": {"type": "integer"},
            "disk_usage": {"type": "integer", "description": "HTCondor DiskUsage (scratch dir)"},
            "steps": {"type": "integer", "description": "Slurm job steps running"},
        },
    },
    "FileEntry": {
        "type": "object", "required": ["name", "path", "type", "size", "mtime", "perms", "owner", "group"],
        "properties": {
            "name": {"type": "string"}, "path": {"type": "string"},
            "type": {"type": "string", "enum": ["file", "directory", "symlink", "other"]},
            "link": {"type": "boolean"}, "size": {"type": "integer"}, "mtime": {"type": "number"},
            "perms": {"type": "string"}, "owner": {"type": "string"}, "group": {"type": "string"},
            "writable": {"type": "boolean"},
        },
    },
    "FileListing": {
        "type": "object", "required": ["path", "entries", "total", "offset", "limit", "writable"],
        "properties": {
            "path": {"type": "string"},
            "entries": {"type": "array", "items": {"$ref": "#/components/schemas/FileEntry"}},
            "total": {"type": "integer", "description": "entries after filtering"},
            "offset": {"type": "integer"}, "limit": {"type": "integer"}, "writable": {"type": "boolean"},
            "parent": NULLABLE_STR, "root": {"type": "object"},
        },
    },
    "PathRequest": {"type": "object", "required": ["path"],
                    "properties": {"path": {"type": "string", "minLength": 1}}},
    "MoveRequest": {"type": "object", "required": ["path", "to"],
                    "properties": {"path": {"type": "string", "minLength": 1},
                                   "to": {"type": "string", "minLength": 1,
                                          "description": "a new name, or an existing folder to put it in"}}},
    "DeleteRequest": {"type": "object", "required": ["paths"],
                      "properties": {"paths": {"type": "array", "minItems": 1, "items": {"type": "string"}}}},
    "UploadRequest": {"type": "object", "required": ["path", "size"],
                      "properties": {"path": {"type": "string", "minLength": 1},
                                     "size": {"type": "integer", "minimum": 0},
                                     "overwrite": {"type": "boolean", "default": False}}},
    "Upload": {"type": "object", "required": ["id", "path", "size", "offset", "done"],
               "properties": {"id": {"type": "string"}, "path": {"type": "string"},
                              "size": {"type": "integer"}, "offset": {"type": "integer"},
                              "done": {"type": "boolean"}}},
})


def files_paths() -> dict:
    """The file manager's API (``/ink/api/files/...``, :mod:`ink_files_ext.files.handlers`)."""
    read, write = [{"hubToken": [SCOPE_FILES_READ]}], [{"hubToken": [SCOPE_FILES]}]

    def change(operation: str, summary: str, body: str, ok: str, schema: str = "FileEntry") -> dict:
        return {"post": {
            "operationId": operation, "summary": summary, "security": write,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}},
            "responses": {ok: _json(schema, "done"), **FILES_ERRORS,
                          "409": _error("The target exists already"),
                          "507": _error("No space left, or quota exceeded")}}}

    usage = {"type": "object", "required": ["roots"], "properties": {"roots": {"type": "array", "items": {
        "type": "object", "required": ["name", "path", "read_only", "kind", "total", "used", "free"],
        "properties": {"name": {"type": "string"}, "path": {"type": "string"},
                       "read_only": {"type": "boolean"}, "kind": {"type": "string", "enum": ["posix", "xrootd"]},
                       "total": {"type": ["integer", "null"]}, "used": {"type": ["integer", "null"]},
                       "free": {"type": ["integer", "null"]}, "error": {"type": "string"}}}}}}
    upload_id = {"name": "upload_id", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}
    paths = {
        f"{FILES}/usage": {"get": {
            "operationId": "storageUsage", "summary": "Size, used and free bytes under each storage root",
            "security": read,
            "responses": {"200": {"description": "the figures", "content": {"application/json": {"schema": usage}}},
                          **FILES_ERRORS}}},
        f"{FILES}/list": {"get": {
            "operationId": "listFiles", "summary": "A page of a folder (folders first)", "security": read,
            "parameters": [
                {**PATH_QUERY, "required": False},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 200}},
                {"name": "sort", "in": "query", "schema": {"type": "string", "enum": ["name", "size", "mtime"]}},
                {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
                {"name": "filter", "in": "query", "schema": {"type": "string"}},
                {"name": "hidden", "in": "query", "schema": {"type": "string", "enum": ["0", "1"]}},
            ],
            "responses": {"200": _json("FileListing", "the page"), **FILES_ERRORS}}},
        f"{FILES}/stat": {"get": {
            "operationId": "statFile", "summary": "One file or folder (default: your home)", "security": read,
            "parameters": [{**PATH_QUERY, "required": False}],
            "responses": {"200": _json("FileEntry", "the entry"), **FILES_ERRORS}}},
        f"{FILES}/download": {"get": {
            "operationId": "downloadFile", "summary": "A file's bytes (HTTP Range supported)", "security": read,
            "parameters": [PATH_QUERY,
                           {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the file",
                                  "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                          "206": {"description": "the requested range",
                                  "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                          **FILES_ERRORS, "416": {"description": "The range is outside the file"}}}},
        f"{FILES}/roots": {"get": {
            "operationId": "storageRoots", "summary": "Your home and the site's storage roots", "security": read,
            "responses": {"200": {"description": "the roots", "content": {"application/json": {"schema": {
                "type": "object", "required": ["roots"], "properties": {"roots": {"type": "array"}}}}}},
                **FILES_ERRORS}}},
        f"{FILES}/zip": {"get": {
            "operationId": "zipFiles", "summary": "A streamed zip of files and folders", "security": read,
            "parameters": [{**PATH_QUERY, "schema": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                            "style": "form", "explode": True}],
            "responses": {"200": {"description": "the archive",
                                  "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
                          **FILES_ERRORS}}},
        f"{FILES}/mkdir": change("makeFolder", "Create a folder", "PathRequest", "201"),
        f"{FILES}/touch": change("makeFile", "Create an empty file", "PathRequest", "201"),
        f"{FILES}/move": change("moveFile", "Rename or move", "MoveRequest", "200"),
        f"{FILES}/copy": change("copyFile", "Copy a file or folder", "MoveRequest", "200"),
        f"{FILES}/delete": {"post": {
            "operationId": "deleteFiles", "summary": "Delete files and folders", "security": write,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/DeleteRequest"}}}},
            "responses": {"200": {"description": "deleted",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          **FILES_ERRORS}}},
        f"{FILES}/uploads": {"post": {
            "operationId": "startUpload", "summary": "Declare an upload (then PUT its bytes in chunks)",
            "security": write,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/UploadRequest"}}}},
            "responses": {"201": _json("Upload", "the upload"), **FILES_ERRORS,
                          "409": _error("The file exists (set overwrite)"),
                          "413": _error("Larger than the site's upload limit")}}},
        f"{FILES}/uploads/{{upload_id}}": {
            "parameters": [upload_id],
            "get": {"operationId": "uploadStatus", "summary": "Where to resume an upload", "security": write,
                    "responses": {"200": _json("Upload", "the upload"), **FILES_ERRORS}},
            "put": {"operationId": "uploadChunk", "summary": "Bytes at the upload's offset", "security": write,
                    "parameters": [{"name": "Content-Range", "in": "header", "required": True,
                                    "schema": {"type": "string", "pattern": "^bytes [0-9]+-[0-9]+/[0-9]+$"}}],
                    "requestBody": {"required": True, "content": {
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                    "responses": {"200": _json("Upload", "written (done when complete)"), **FILES_ERRORS,
                                  "409": _error("Not at the upload's offset (the message names it)"),
                                  "413": _error("More than the declared size, or a chunk over 16 MiB"),
                                  "507": _error("No space left, or quota exceeded")}},
            "delete": {"operationId": "cancelUpload", "summary": "Give up an upload", "security": write,
                       "responses": {"204": {"description": "cancelled"}, **FILES_ERRORS}},
        },
    }
    for item in paths.values():  # every file operation can be confined to a workspace
        for method in ("get", "post", "put", "delete"):
            if method in item:
                item[method]["parameters"] = [*item[method].get("parameters", []), WITHIN]
    return paths


#: ``ink mcp --workspace``: the request may touch nothing outside this folder (checked by the
#: server after following symlinks; 403 otherwise)
WITHIN = {"name": "X-Ink-Within", "in": "header", "required": False,
          "description": "confine this request to one folder (absolute, or relative to your home): "
                         "any path outside it, symlinks followed, is refused with 403",
          "schema": {"type": "string", "minLength": 1, "maxLength": 1024}}


def document(base_url: str = "/") -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "INK Hub user API",
            "version": "1",
            "description": "Served by your own server (the portal), as you. Authenticate with a hub "
                           "token: `Authorization: token <token>`. Errors are JSON `{\"message\": ...}` "
                           "with a real status code.",
        },
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "paths": {**jobs_paths(), **files_paths()},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"hubToken": {
                "type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`token <hub API token>`; INK scopes: "
                               f"{SCOPE_JOBS_READ}, {SCOPE_JOBS}, {SCOPE_FILES_READ}, {SCOPE_FILES}",
            }},
        },
    }
