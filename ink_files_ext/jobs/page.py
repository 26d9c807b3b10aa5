"""The Jobs page (``/ink/jobs``): the user's batch jobs and sessions, in the portal server.

A page and nothing else: everything it shows and does goes through the job API of this server
(``/ink/api/v1``, with the browser's login and the XSRF token) and the hub's list of the user's
sessions (``/hub/ink/api/sessions``, the hub's login cookie, same origin). Its submit form posts
to the same API as ``ink jobs submit``, so the one validator answers it with the same 400
messages; the page has no rule of its own.
"""

from __future__ import annotations

import os

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerJinjaMixin, ExtensionHandlerMixin
from tornado import web

from .. import api_auth


class JobsPageHandler(ExtensionHandlerJinjaMixin, ExtensionHandlerMixin, JupyterHandler):
    """GET /ink/jobs: the page; its data come from the JSON APIs."""

    auth_resource = "contents"  # jupyter-server's authorizer: what the page gives access to (the user's files, through jobs)

    @web.authenticated
    @authorized
    def get(self):
        user = self.current_user.username
        if user != api_auth.server_owner() and api_auth.server_owner():
            raise web.HTTPError(403, f"only {api_auth.server_owner()} may use this server's Jobs page")
        xsrf = self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes) else self.xsrf_token
        hub_base = os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/hub/"
        self.write(self.render_template(
            "ink_jobs.html",
            config={
                "api": self.base_url + "ink/api/v1/",
                "sessions_api": hub_base + "ink/api/sessions",
                "files_url": self.base_url + "ink/files",
                "xsrf": xsrf,
                "user": user,
                "poll_ms": 3000,
            },
            jobs_js=self.static_url("ink_jobs.js"),
            jobs_css=self.static_url("ink_jobs.css"),
        ))


def page_handlers() -> list[tuple]:
    return [(r"/ink/jobs/?", JobsPageHandler)]
