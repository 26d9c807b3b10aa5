"""The file manager page (``/ink/files``) and the server-rendered preview it needs (FITS)."""

from __future__ import annotations

import os
from urllib.parse import urlencode

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerJinjaMixin
from tornado import web

from . import fits
from .handlers import FilesHandlerMixin
from .roots import FilesError


class FilesPageHandler(ExtensionHandlerJinjaMixin, FilesHandlerMixin, JupyterHandler):
    """GET /ink/files[?path=P]: the page; everything it shows comes from the JSON API."""

    write_error = JupyterHandler.write_error  # a page: errors as an HTML page
    api = False

    @web.authenticated
    @authorized
    def get(self):
        xsrf = self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes) else self.xsrf_token
        vendor = {name: self.static_url(f"vendor/{name}") for name in (
            "pdf.min.mjs", "pdf.worker.min.mjs", "highlight.min.js",
            "highlight-light.min.css", "highlight-dark.min.css")}
        self.write(self.render_template(
            "ink_files.html",
            config={
                "base_url": self.base_url,
                "xsrf": xsrf,
                "user": self.current_user.username,
                "home": self.roots.home.path,
                "roots": [r.as_json() for r in self.roots.all],
                "start": self.get_argument("path", self.roots.home.path),
                "vendor": vendor,
                "icons": self.static_url("ink_icons.svg"),
                "shell_url": self.base_url + "ink/shell",
                "anonymous_shares": self.settings["ink_files_anonymous_shares"],
            },
            files_js=self.static_url("ink_files.js"),
            files_css=self.static_url("ink_files.css"),
            highlight_js=vendor["highlight.min.js"],
        ))


class RootViewHandler(ExtensionHandlerJinjaMixin, FilesHandlerMixin, JupyterHandler):
    """GET /ink/rootview?path=P: a ROOT file in JSROOT (the ROOT browser app's assets)."""

    write_error = JupyterHandler.write_error
    api = False

    @property
    def content_security_policy(self) -> str:
        return "frame-ancestors 'self'"  # shown inside the file manager's preview, same origin

    @web.authenticated
    @authorized
    def get(self):
        target = self.roots.resolve(self.query_path())
        url = self.base_url + "ink/api/files/download?" + urlencode({"path": target.path, "inline": "1"})
        xsrf = self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes) else self.xsrf_token
        self.write(self.render_template(
            "ink_rootview.html", file_name=os.path.basename(target.path),
            config={"url": url, "xsrf": xsrf, "jsroot": self.base_url + "ink-apps/static/jsroot/modules/main.mjs"},
            rootview_js=self.static_url("ink_rootview.js")))


class FitsPreviewHandler(FilesHandlerMixin, APIHandler):
    """GET /ink/api/files/fits?path=P[&hdu=N]: HDU list, header and a PNG of an image HDU."""

    @web.authenticated
    @authorized
    async def get(self):
        target = self.roots.resolve(self.query_path())
        hdu = self.get_argument("hdu", None)
        # ASCII digits only: str.isdigit() also accepts '²' or '٣', which int() refuses
        if hdu is not None and not (hdu.isascii() and hdu.isdigit() and len(hdu) <= 6):
            raise FilesError(400, "hdu: must be an HDU number (0, 1, 2, ...)")
        try:
            result = await self.in_thread(fits.preview, target.path, None if hdu is None else int(hdu))
        except FilesError:
            raise
        except Exception as e:  # astropy met something it cannot parse: say so, never "Unhandled error"
            self.log.warning("FITS preview of %s failed: %r", target.path, e)
            raise FilesError(422, f"{os.path.basename(target.path)}: cannot preview this FITS file "
                             f"({type(e).__name__}: {str(e)[:300] or 'no detail'})") from None
        self.finish(result)


def page_handlers() -> list[tuple]:
    return [(r"/ink/files/?", FilesPageHandler), (r"/ink/api/files/fits", FitsPreviewHandler),
            (r"/ink/rootview", RootViewHandler)]
