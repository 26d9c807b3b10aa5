"""``ink-hub``: the admin's command line.

    ink-hub init --profile PROFILE [--dir DIR] [--non-interactive] [--set KEY=VALUE ...] [--force]
                                      create or update a site directory (config, secrets, TLS,
                                      systemd unit, hub image definition); idempotent
    ink-hub config check [--dir DIR | FILES...]
                                      validate the layered site configuration and print the
                                      merged result (exit 0), or the errors (exit 1)
    ink-hub doctor [--dir DIR | --site FILES...] [--json] [--test-user USER] ...
                                      check everything the site needs; exit 1 on a failure
"""

from __future__ import annotations

import argparse
import sys

import yaml

from .catalogue.load import CatalogueError, load_site
from .site import SiteDirError, read_layers, site_dir_default


def _hub_outline(merged: dict) -> dict:
    """The configuration with the hub: section's values hidden.

    hub: holds traitlets settings such as database URLs, OAuth client secrets and API tokens;
    the check's output goes to terminals and logs, so it only says which options are set.
    """
    out = dict(merged)
    if isinstance(out.get("hub"), dict):
        out["hub"] = {cls: {opt: "(set)" for opt in (opts or {})} for cls, opts in out["hub"].items()}
    return out


def _layers(args) -> list[str]:
    """FILES given on the command line, else the layers of the site directory (--dir)."""
    if getattr(args, "files", None):
        return args.files
    if args.dir is None and getattr(args, "command", "") == "config":
        return []  # `ink-hub config check` alone: the built-in defaults
    return read_layers(args.dir or site_dir_default())


def _load(args):
    try:
        return load_site(_layers(args))
    except SiteDirError as e:
        print(f"ink-hub: {e}", file=sys.stderr)
    except CatalogueError as e:
        print("INK site configuration is invalid:", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
    return None


def _config_check(args) -> int:
    site = _load(args)
    if site is None:
        return 1
    if args.quiet:
        return 0
    print(f"# merged from: {', '.join(site.sources)}")
    print(yaml.safe_dump(_hub_outline(site.merged), sort_keys=False, default_flow_style=False), end="")
    return 0


def _parse_sets(pairs: list[str]) -> dict:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE")
        values[key.strip()] = value
    return values


def _ask(setting, current: str) -> str:
    shown = "(hidden)" if setting.secret and current else current
    try:
        answer = input(f"{setting.key} — {setting.help} [{shown}]: ")
    except EOFError:
        return current
    return answer.strip() or current


def _init(args) -> int:
    from .siteinit import InitError, run_init

    try:
        given = _parse_sets(args.set)
        run_init(args.dir or site_dir_default(), args.profile, given, force=args.force,
                 ask=None if args.non_interactive else _ask)
    except (InitError, ValueError) as e:
        print(f"ink-hub init: {e}", file=sys.stderr)
        return 1
    except PermissionError as e:
        print(f"ink-hub init: {e.filename}: permission denied (run as the hub's user)", file=sys.stderr)
        return 1
    directory = args.dir or site_dir_default()
    print(f"Next: ink-hub config check --dir {directory} && ink-hub doctor --dir {directory} --test-user USER")
    return 0


def _doctor(args) -> int:
    from . import doctor

    site = _load(args)
    if site is None:
        return 1
    overrides = {
        "munge_socket": args.munge_socket, "hub_api_url": args.hub_api_url, "path": args.path,
        "test_user": args.test_user, "timeout": args.timeout, "test_job_timeout": args.job_timeout,
        "oidc_discovery_url": args.oidc_discovery_url, "keytab": args.keytab,
        "min_free_disk": args.min_free_disk,
        "site_dir": None if args.files else (args.dir or site_dir_default()),
    }
    return doctor.main(site, overrides, output_json=args.json)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ink-hub", description="INK Hub administration")
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create or update a site directory")
    init.add_argument("--profile", choices=("demo", "slurm-site", "htcondor-site", "course"),
                      help="deployment profile (required for a new site)")
    init.add_argument("--dir", help="site directory (default $INK_HUB_DIR or /etc/ink-hub)")
    init.add_argument("--non-interactive", action="store_true", help="ask nothing: defaults, recorded "
                      "settings and --set values")
    init.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting (repeatable)")
    init.add_argument("--force", action="store_true", help="overwrite files edited since init wrote them "
                      "(secrets are never regenerated)")

    config = sub.add_parser("config", help="site configuration")
    config_sub = config.add_subparsers(dest="action", required=True)
    check = config_sub.add_parser("check", help="validate and print the merged configuration")
    check.add_argument("files", nargs="*", help="deployment profile, then site overlay, ...")
    check.add_argument("--dir", help="the layers of this site directory (made by ink-hub init)")
    check.add_argument("--quiet", action="store_true", help="print only problems")

    doc = sub.add_parser("doctor", help="check everything the site needs")
    doc.add_argument("--dir", help="site directory (default $INK_HUB_DIR or /etc/ink-hub)")
    doc.add_argument("--site", dest="files", nargs="+", metavar="FILE", help="layers instead of --dir")
    doc.add_argument("--json", action="store_true", help="machine-readable output")
    doc.add_argument("--test-user", help="run the test job as this user (Doctor.test_user)")
    doc.add_argument("--hub-api-url", help="the hub API URL as nodes reach it (Doctor.hub_api_url)")
    doc.add_argument("--munge-socket", help="munged's socket (Doctor.munge_socket)")
    doc.add_argument("--path", help="PATH for the site's commands (Doctor.path)")
    doc.add_argument("--timeout", type=float, help="seconds per check (Doctor.timeout)")
    doc.add_argument("--job-timeout", type=float, help="seconds for the test job (Doctor.test_job_timeout)")
    doc.add_argument("--oidc-discovery-url", help="Doctor.oidc_discovery_url")
    doc.add_argument("--keytab", help="Doctor.keytab")
    doc.add_argument("--min-free-disk", type=float, help="GiB (Doctor.min_free_disk)")

    args = parser.parse_args(argv)
    if args.command == "init":
        return _init(args)
    if args.command == "doctor":
        return _doctor(args)
    return _config_check(args)


if __name__ == "__main__":
    sys.exit(main())
