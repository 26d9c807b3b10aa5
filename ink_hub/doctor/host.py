"""Doctor checks on the hub host: secrets, TLS, CHP, disk, Unix groups, images, Kerberos,
OpenID Connect, HTCondor. Each returns one or more :class:`Result` rows."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import grp
import json
import os
import secrets
import shutil
import stat
import time
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from .base import FAIL, OK, SKIP, WARN, Result, run, which


async def check_secrets(doctor) -> list[Result]:
    if not doctor.site_dir:
        return [Result("secrets", SKIP, "no site directory (give --dir)")]
    from ..site import SECRETS_DIR

    base = Path(doctor.site_dir) / SECRETS_DIR

    def scan():
        if not base.is_dir():
            return None, []
        loose = [p.name for p in sorted(base.iterdir())
                 if not p.name.endswith((".pub", ".crt")) and stat.S_IMODE(p.stat().st_mode) & 0o077]
        return stat.S_IMODE(base.stat().st_mode), loose

    mode, loose = await asyncio.to_thread(scan)
    if mode is None:
        return [Result("secrets", FAIL, f"{base} is missing", f"ink-hub init --dir {doctor.site_dir}")]
    if loose or mode & 0o077:
        return [Result("secrets", FAIL, f"readable by others: {', '.join(loose) or base}",
                       f"chmod 700 {base} && chmod 600 {base}/*; then rotate them")]
    return [Result("secrets", OK, f"{base}: 0700, every secret 0600")]


async def check_tls(doctor) -> list[Result]:
    cert = doctor.hub_option("JupyterHub", "ssl_cert")
    key = doctor.hub_option("JupyterHub", "ssl_key")
    if not cert:
        bind = str(doctor.hub_option("JupyterHub", "bind_url", ""))
        status = WARN if not bind.startswith("http://127.") else SKIP
        return [Result("TLS certificate", status, "the hub serves plain HTTP",
                       "put TLS in front of the hub or set JupyterHub.ssl_cert/ssl_key")]
    from cryptography import x509

    def load():
        return x509.load_pem_x509_certificate(Path(cert).read_bytes()), os.access(key or "", os.R_OK)

    try:
        certificate, key_ok = await asyncio.to_thread(load)
    except (OSError, ValueError) as e:
        return [Result("TLS certificate", FAIL, f"{cert}: {e}", "ink-hub init makes one, or set tls_cert/tls_key")]
    left = certificate.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    subject = certificate.subject.rfc4514_string()
    if not key_ok:
        return [Result("TLS certificate", FAIL, f"the key {key} cannot be read", "check JupyterHub.ssl_key")]
    if left.total_seconds() <= 0:
        return [Result("TLS certificate", FAIL, f"{subject} expired", "renew the certificate")]
    self_signed = certificate.issuer == certificate.subject
    detail = f"{subject}, {left.days} days left" + (" (self-signed)" if self_signed else "")
    if left.days < 14:
        return [Result("TLS certificate", WARN, detail, "renew the certificate soon")]
    if self_signed:
        return [Result("TLS certificate", WARN, detail,
                       "browsers warn about it: set tls_cert/tls_key to your CA's certificate")]
    return [Result("TLS certificate", OK, detail)]


async def check_chp(doctor) -> list[Result]:
    argv = list(doctor.chp_command)
    found = which(argv[0], doctor.path) if argv else None
    if not found:
        return [Result("CHP", FAIL, f"{argv[0] if argv else '(none)'} not found in PATH",
                       "npm install -g configurable-http-proxy (the version in package.json), or set "
                       "ConfigurableHTTPProxy.command")]
    done = await run([found, *argv[1:], "--version"], doctor.timeout)
    if not done.ok:
        return [Result("CHP", FAIL, done.why(), "reinstall configurable-http-proxy (needs Node.js)")]
    return [Result("CHP", OK, f"configurable-http-proxy {done.stdout.strip()} ({found})")]


async def check_disk(doctor) -> list[Result]:
    rows = []
    for label, path in (("state", doctor.state_dir()), ("tmp", "/tmp")):
        try:
            usage = await asyncio.to_thread(shutil.disk_usage, path)
        except OSError as e:
            rows.append(Result(f"free disk: {label}", FAIL, f"{path}: {e.strerror}", f"create {path}"))
            continue
        free = usage.free / 2**30
        detail = f"{path}: {free:.1f} GiB free"
        if free < doctor.min_free_disk:
            rows.append(Result(f"free disk: {label}", FAIL, f"{detail} (< {doctor.min_free_disk:g} GiB)",
                               f"free space on the file system of {path}"))
        else:
            rows.append(Result(f"free disk: {label}", OK, detail))
    return rows


async def check_unix_groups(doctor) -> list[Result]:
    wanted = {}
    for name, exp in doctor.site.catalogue.experiments.items():
        for group in exp.members.unix_groups:
            wanted.setdefault(group, []).append(name)
    if not wanted:
        return [Result("unix groups", SKIP, "the catalogue names no Unix group")]

    def missing():
        out = []
        for group in wanted:
            try:
                grp.getgrnam(group)
            except KeyError:
                out.append(group)
        return out

    gone = await asyncio.to_thread(missing)
    if gone:
        where = "; ".join(f"{g} (experiments {', '.join(wanted[g])})" for g in gone)
        return [Result("unix groups", FAIL, f"unknown on the hub host: {where}",
                       "create the group or fix members.unix_groups; check SSSD/LDAP on the hub host")]
    return [Result("unix groups", OK, f"{', '.join(sorted(wanted))} known")]


async def check_images(doctor) -> list[Result]:
    images = doctor.site.catalogue.images
    if not images:
        return [Result("Apptainer images", SKIP, "the catalogue names no image")]
    gone = await asyncio.to_thread(lambda: [n for n, i in images.items() if not os.path.isfile(i.path)])
    if gone:
        return [Result("Apptainer images", FAIL,
                       "missing on the hub host: " + ", ".join(f"{n} ({images[n].path})" for n in gone),
                       "build or copy the image (images/), or fix images.NAME.path")]
    return [Result("Apptainer images", OK, f"{len(images)} present on the hub host (nodes: see the test job)")]


async def check_kerberos(doctor) -> list[Result]:
    kerberos_login = "kerberos" in doctor.authenticator.lower()
    if not kerberos_login and not doctor.keytab:
        return [Result("Kerberos", SKIP, "no Kerberos login and no keytab configured")]
    rows = []
    if kerberos_login or doctor.kerberos_realm:
        realm = doctor.kerberos_realm or doctor.hub_option("KerberosAuthenticator", "realm", "")
        kinit = which(doctor.kinit, doctor.path)
        if not kinit:
            rows.append(Result("Kerberos: KDC", FAIL, f"{doctor.kinit} not found", "apt install krb5-user"))
        else:
            # a principal that cannot exist: a KDC that answers says "not found"; no password is sent
            probe = f"ink-doctor-probe-{secrets.token_hex(4)}" + (f"@{realm}" if realm else "")
            done = await run([kinit, probe], doctor.timeout, stdin=b"")
            text = (done.stderr + done.stdout).lower()
            if "not found in kerberos database" in text or "client not found" in text:
                rows.append(Result("Kerberos: KDC", OK, f"the KDC of {realm or 'the default realm'} answers"))
            else:
                rows.append(Result("Kerberos: KDC", FAIL, done.why(),
                                   "check [realms] and the KDC's reachability (port 88) in /etc/krb5.conf"))
    if doctor.keytab:
        def keytab_mode():
            return stat.S_IMODE(os.stat(doctor.keytab).st_mode)
        try:
            mode = await asyncio.to_thread(keytab_mode)
        except OSError as e:
            rows.append(Result("Kerberos: keytab", FAIL, f"{doctor.keytab}: {e.strerror}", "copy the keytab there"))
        else:
            done = await run([which(doctor.klist, doctor.path) or doctor.klist, "-k", doctor.keytab], doctor.timeout)
            entries = [ln for ln in done.stdout.splitlines() if ln.strip()[:1].isdigit()]
            if mode & 0o077:
                rows.append(Result("Kerberos: keytab", FAIL, f"{doctor.keytab} is readable by others",
                                   f"chmod 600 {doctor.keytab}"))
            elif not done.ok or not entries:
                rows.append(Result("Kerberos: keytab", FAIL, done.why() if not done.ok else "no key in it",
                                   "export the service's keys with kadmin ktadd"))
            else:
                rows.append(Result("Kerberos: keytab", OK, f"{len(entries)} key(s) in {doctor.keytab}"))
    return rows


async def check_oidc(doctor) -> list[Result]:
    url = doctor.oidc_discovery_url
    if not url:
        if "oidc" in doctor.authenticator.lower() or "oauth" in doctor.authenticator.lower():
            return [Result("OIDC discovery", WARN, "no discovery URL to check",
                           "set Doctor.oidc_discovery_url (ISSUER/.well-known/openid-configuration)")]
        return [Result("OIDC discovery", SKIP, "no OpenID Connect login")]
    before = time.time()
    try:
        response = await AsyncHTTPClient().fetch(url, request_timeout=doctor.timeout, connect_timeout=doctor.timeout)
    except HTTPClientError as e:
        return [Result("OIDC discovery", FAIL, f"{url}: HTTP {e.code}", "check the issuer URL")]
    except Exception as e:  # noqa: BLE001 - connection refused, DNS, TLS
        return [Result("OIDC discovery", FAIL, f"{url}: {type(e).__name__}: {e}",
                       "check the issuer URL, DNS and the hub host's outbound HTTPS")]
    after = time.time()
    try:
        doc = json.loads(response.body)
        missing = [k for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri") if k not in doc]
    except ValueError:
        return [Result("OIDC discovery", FAIL, f"{url}: not JSON", "this is not a discovery document")]
    rows = []
    if missing:
        rows.append(Result("OIDC discovery", FAIL, f"missing {', '.join(missing)}", "check the issuer URL"))
    else:
        rows.append(Result("OIDC discovery", OK, f"issuer {doc['issuer']}"))
    date = response.headers.get("Date")
    if date:
        provider_time = email.utils.parsedate_to_datetime(date).timestamp()
        # the Date header has 1 s resolution and was made between before and after
        skew = max(before - 1 - provider_time, provider_time - after, 0)
        status = OK if skew <= doctor.max_clock_skew else FAIL
        rows.append(Result("clock skew: provider", status, f"{skew:.0f} s from the identity provider",
                           "run chrony/ntpd on the hub host: tokens are refused when clocks disagree"))
    return rows


async def check_htcondor(doctor) -> list[Result]:
    try:
        import htcondor2  # noqa: F401
    except ImportError:
        return [Result("HTCondor: bindings", FAIL, "the htcondor Python bindings are not installed",
                       "pip install 'ink-hub[htcondor]' in the hub's environment")]
    rows = [Result("HTCondor: bindings", OK, f"htcondor2 {htcondor2.version()[:60]}")]
    name = doctor.hub_option("HTCondorBackend", "schedd_name", "") or None

    def locate():
        collector = htcondor2.Collector()
        ad = collector.locate(htcondor2.DaemonType.Schedd, name) if name else collector.locate(htcondor2.DaemonType.Schedd)
        schedd = htcondor2.Schedd(ad)
        return len(schedd.query(constraint="false", projection=["ClusterId"]))

    try:
        await asyncio.wait_for(asyncio.to_thread(locate), doctor.timeout)
    except Exception as e:  # noqa: BLE001 - the bindings raise several kinds
        rows.append(Result("HTCondor: schedd", FAIL, f"{type(e).__name__}: {str(e)[:200] or 'no answer'}",
                           "check CONDOR_CONFIG/COLLECTOR_HOST on the hub host and that the schedd runs"))
    else:
        rows.append(Result("HTCondor: schedd", OK, f"schedd {name or '(local)'} answers"))
    rows.append(Result("HTCondor: test job", SKIP, "test jobs are run on Slurm sites only"))
    return rows
