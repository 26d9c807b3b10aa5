"""``ink-hub doctor``: everything a site needs, checked as the hub's user, with a fix per failure.

The checks read the same layered configuration the hub reads (catalogue and ``hub:`` section),
run concurrently, each with its own deadline, and never change the site (the test job writes
two small files in the test user's home and removes them). Every setting of a check is a
``Doctor`` traitlet, so a site sets them under ``hub: Doctor:`` and the command line overrides
them (``--munge-socket``, ``--hub-api-url``, ``--path``, ...), which is also how the tests
inject faults without stopping the shared daemons.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from urllib.parse import urlparse

from traitlets import Float, List, Unicode, default
from traitlets.config import Config, LoggingConfigurable

from ..catalogue.load import SiteConfig
from . import host, slurm
from .base import FAIL, OK, SKIP, WARN, Result


def _hub_option(site: SiteConfig, cls: str, option: str, fallback=None):
    return (site.hub_config.get(cls) or {}).get(option, fallback)


class Doctor(LoggingConfigurable):
    path = Unicode(
        help="PATH in which the scheduler's and the other site commands are looked up "
        "(default: the doctor's own PATH, as the hub would have it).",
    ).tag(config=True)

    @default("path")
    def _path_default(self):
        return os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")

    timeout = Float(20.0, help="Seconds each check may take (a command that hangs is killed).").tag(config=True)

    test_job_timeout = Float(
        240.0, help="Seconds the test job may take from submission to its end (queueing included)."
    ).tag(config=True)

    test_user = Unicode(
        "", help="Unix user the test job runs as (a real user with a shared home). Empty: the "
        "test-job checks are skipped with a warning.",
    ).tag(config=True)

    hub_api_url = Unicode(
        help="The hub's API URL as the worker nodes reach it (default: JupyterHub.hub_connect_url, "
        "else hub_bind_url with its host name). If no hub answers there, the doctor listens on the "
        "hub's bind address itself while the test job runs.",
    ).tag(config=True)

    munge_socket = Unicode("/run/munge/munge.socket.2", help="munged's socket, passed to munge/unmunge -S.").tag(config=True)
    munge = Unicode("munge", help="the munge command").tag(config=True)
    unmunge = Unicode("unmunge", help="the unmunge command").tag(config=True)
    sinfo = Unicode("sinfo", help="the sinfo command").tag(config=True)
    sacctmgr = Unicode("sacctmgr", help="the sacctmgr command (accounts; needs slurmdbd)").tag(config=True)
    kinit = Unicode("kinit", help="the kinit command (KDC check)").tag(config=True)
    klist = Unicode("klist", help="the klist command (keytab check)").tag(config=True)

    keytab = Unicode("", help="A keytab the site uses (e.g. for SPNEGO); checked readable by "
                     "the hub only and listed with klist -k.").tag(config=True)
    kerberos_realm = Unicode("", help="Realm whose KDC is checked (default: KerberosAuthenticator.realm; "
                             "empty with a Kerberos login: krb5.conf's default realm).").tag(config=True)

    oidc_discovery_url = Unicode(
        "", help="The OpenID Connect discovery document (ISSUER/.well-known/openid-configuration); "
        "`ink-hub init` sets it for ink-oidc.",
    ).tag(config=True)

    chp_command = List(Unicode(), help="configurable-http-proxy's argv (default: the hub's "
                       "ConfigurableHTTPProxy.command).").tag(config=True)

    max_clock_skew = Float(60.0, help="Seconds of clock difference tolerated between the hub, the "
                           "worker nodes and the identity provider (tokens, tickets, MUNGE).").tag(config=True)

    min_free_disk = Float(1.0, help="GiB that must be free where the hub keeps its state and in /tmp.").tag(config=True)

    site_dir = Unicode("", help="The site directory of `ink-hub init` (its secrets are checked).").tag(config=True)

    def __init__(self, site: SiteConfig, **kwargs):
        super().__init__(config=Config(site.hub_config), **kwargs)
        self.site = site

    # ---- what the hub is configured with --------------------------------------------------

    @property
    def backend(self) -> str:
        return _hub_option(self.site, "InkSpawner", "backend", "local")

    @property
    def authenticator(self) -> str:
        return str(_hub_option(self.site, "JupyterHub", "authenticator_class", ""))

    def hub_option(self, cls: str, option: str, fallback=None):
        return _hub_option(self.site, cls, option, fallback)

    def hub_bind(self) -> tuple[str, int]:
        url = urlparse(self.hub_option("JupyterHub", "hub_bind_url", "") or "http://127.0.0.1:8081")
        return url.hostname or "127.0.0.1", url.port or 8081

    @default("hub_api_url")
    def _hub_api_url_default(self):
        connect = self.hub_option("JupyterHub", "hub_connect_url", "")
        if connect:
            return connect.rstrip("/") + "/hub/api"
        bind_host, port = self.hub_bind()
        if bind_host in ("0.0.0.0", "::", ""):
            bind_host = socket.getfqdn()
        return f"http://{bind_host}:{port}/hub/api"

    @default("chp_command")
    def _chp_default(self):
        command = self.hub_option("ConfigurableHTTPProxy", "command")
        if command:
            return list(command)
        from ..config import REPO_ROOT

        local = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
        from .base import which

        if not which("configurable-http-proxy", self.path) and local.exists():
            return [str(local)]  # what ink_hub.config.configure picks for a checkout
        return ["configurable-http-proxy"]

    def state_dir(self) -> str:
        db = str(self.hub_option("JupyterHub", "db_url", "") or "")
        if db.startswith("sqlite:///"):
            return os.path.dirname(os.path.abspath(db.removeprefix("sqlite:///"))) or os.getcwd()
        return os.getcwd()

    # ---- running the checks ----------------------------------------------------------------

    async def guarded(self, name: str, coro, timeout: float | None = None) -> list[Result]:
        """A check's results; a check that exceeds its deadline or breaks is a failure row."""
        try:
            out = await asyncio.wait_for(coro, timeout or self.timeout + 5)
        except asyncio.TimeoutError:
            return [Result(name, FAIL, f"no answer within {timeout or self.timeout + 5:.0f} s",
                           "see what hangs: run the check's command by hand")]
        except Exception as e:  # noqa: BLE001 - a broken check must not hide the others
            self.log.exception("check %s failed", name)
            return [Result(name, FAIL, f"the check itself failed: {type(e).__name__}: {e}")]
        return out if isinstance(out, list) else [out]

    async def run(self) -> list[Result]:
        job_timeout = None
        if self.backend == "slurm":
            checks = [("Slurm", slurm.check_slurm(self))]
            job_timeout = self.test_job_timeout + 3 * self.timeout + 10
        elif self.backend == "htcondor":
            checks = [("HTCondor", host.check_htcondor(self))]
        else:
            checks = [("scheduler", _local_backend(self.backend))]
        checks += [("secrets", host.check_secrets(self)), ("TLS certificate", host.check_tls(self)),
                   ("CHP", host.check_chp(self)), ("free disk", host.check_disk(self)),
                   ("unix groups", host.check_unix_groups(self)),
                   ("Apptainer images", host.check_images(self)),
                   ("Kerberos", host.check_kerberos(self)), ("OIDC discovery", host.check_oidc(self))]
        results = await asyncio.gather(*(
            self.guarded(name, coro, job_timeout if i == 0 else None) for i, (name, coro) in enumerate(checks)))
        return [r for group in results for r in group]  # the scheduler's rows first


async def _local_backend(backend: str) -> Result:
    if backend == "local":
        return Result("scheduler", OK, "local backend: sessions are processes on the hub host")
    return Result("scheduler", SKIP, f"backend {backend!r}: no doctor checks for it")


# ---- output ----------------------------------------------------------------------------------

MARK = {OK: "ok", WARN: "WARN", FAIL: "FAIL", SKIP: "skip"}


def table(rows: list[Result]) -> str:
    width = max([len("CHECK")] + [len(r.check) for r in rows]) + 2
    lines = [f"{'CHECK':<{width}}{'STATUS':<8}DETAIL"]
    for r in rows:
        lines.append(f"{r.check:<{width}}{MARK[r.status]:<8}{r.detail}")
        if r.fix and r.status in (FAIL, WARN):
            lines.append(f"{'':<{width}}{'':<8}fix: {r.fix}")
    counts = {s: sum(r.status == s for r in rows) for s in (OK, WARN, FAIL, SKIP)}
    lines.append("")
    lines.append(f"{counts[OK]} ok, {counts[WARN]} warnings, {counts[FAIL]} failed, {counts[SKIP]} skipped")
    return "\n".join(lines)


def as_json(rows: list[Result]) -> str:
    return json.dumps({"ok": not any(r.status == FAIL for r in rows),
                       "checks": [r.to_json() for r in rows]}, indent=2)


def main(site: SiteConfig, overrides: dict, output_json: bool = False) -> int:
    doctor = Doctor(site, **{k: v for k, v in overrides.items() if v is not None})
    rows = asyncio.run(doctor.run())
    print(as_json(rows) if output_json else table(rows))
    sys.stdout.flush()
    return 1 if any(r.status == FAIL for r in rows) else 0
