"""Run a batch job's command with the environment from ``$INK_ENV_FILE``.

HTCondor jobs get their environment in a 0600 JSON file written by the user's submit helper,
not in the job ad (which other users can read). A session's ``ink-session`` loads it itself;
a workflow job's command is run through this module, which loads it and execs the command.
Standard library only: it runs on the worker.

    python -m ink_spawner.jobenv -- PROGRAM ARGS...
"""

from __future__ import annotations

import os
import sys

from .session import load_env_file


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit("usage: python -m ink_spawner.jobenv -- PROGRAM ARGS...")
    try:
        load_env_file()
    except (OSError, ValueError) as e:
        sys.exit(f"cannot read the job environment from $INK_ENV_FILE: {e}")
    try:
        os.execvp(args[0], args)
    except OSError as e:
        sys.exit(f"cannot run {args[0]}: {e}")


if __name__ == "__main__":
    main()
