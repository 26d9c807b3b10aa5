"""schemathesis hooks for tests/test_workflow_openapi.py (loaded with SCHEMATHESIS_HOOKS).

Generated job requests that the API accepts really run on Slurm as the test user. So that a
random string never runs as a program, every non-empty program argument becomes ``true`` and
every non-empty script ``#!/bin/sh`` + ``true``, keeping the shape (list length, types) that
schemathesis chose; everything else of the request stays as generated.
"""

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if not isinstance(body, dict):
        return
    if isinstance(body.get("command"), list):
        body["command"] = ["true" if isinstance(a, str) and a else a for a in body["command"]]
    if isinstance(body.get("script"), str) and body["script"]:
        body["script"] = "#!/bin/sh\ntrue\n"


SANDBOX = "ink-schemathesis"  # under the test user's home; created and removed by the test


def confine(value):
    """A generated path, kept inside SANDBOX: file operations that the API accepts really
    change the user's home, and must not leave files where other tests look (a fuzzed
    ``touch sim-out`` once broke the documented example). Traversal is tested elsewhere."""
    if not isinstance(value, str) or not value:
        return value
    parts = [p for p in value.replace("\\", "/").split("/") if p not in ("", ".", "..", "~")]
    return "/".join([SANDBOX, *parts])


@schemathesis.hook("before_call")
def confine_file_paths(context, case, kwargs):
    if not case.operation.path.startswith("/ink/api/files/"):
        return
    if isinstance(case.query, dict) and "path" in case.query:
        value = case.query["path"]
        case.query["path"] = [confine(v) for v in value] if isinstance(value, list) else confine(value)
    body = case.body
    if isinstance(body, dict):
        for key in ("path", "to"):
            if key in body:
                body[key] = confine(body[key])
        if isinstance(body.get("paths"), list):
            body["paths"] = [confine(p) for p in body["paths"]]
