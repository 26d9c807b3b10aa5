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
