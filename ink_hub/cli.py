"""``ink-hub``: the admin's command line.

    ink-hub config check [FILES...]   validate the layered site configuration and print the
                                      merged result (exit 0), or the errors (exit 1)
"""

from __future__ import annotations

import argparse
import sys

import yaml

from .catalogue.load import CatalogueError, load_site


def _hub_outline(merged: dict) -> dict:
    """The configuration with the hub: section's values hidden.

    hub: holds traitlets settings such as database URLs, OAuth client secrets and API tokens;
    the check's output goes to terminals and logs, so it only says which options are set.
    """
    out = dict(merged)
    if isinstance(out.get("hub"), dict):
        out["hub"] = {cls: {opt: "(set)" for opt in (opts or {})} for cls, opts in out["hub"].items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ink-hub", description="INK Hub administration")
    sub = parser.add_subparsers(dest="command", required=True)
    config = sub.add_parser("config", help="site configuration")
    config_sub = config.add_subparsers(dest="action", required=True)
    check = config_sub.add_parser("check", help="validate and print the merged configuration")
    check.add_argument("files", nargs="*", help="deployment profile, then site overlay, ...")
    args = parser.parse_args(argv)
    try:
        site = load_site(args.files)
    except CatalogueError as e:
        print("INK site configuration is invalid:", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"# merged from: {', '.join(site.sources)}")
    print(yaml.safe_dump(_hub_outline(site.merged), sort_keys=False, default_flow_style=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
