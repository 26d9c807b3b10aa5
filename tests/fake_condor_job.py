"""ink-condor-job with the FAKE schedd (tests only): the real helper, after fake_schedd.install().

The hub runs its submit helper as the session's user in a process of its own; tests make
``c.HTCondorBackend.submit_helper`` this module (``FakePool.helper``) so that the real helper
code (``ink_spawner.condor_job``) runs against the fake queue file given by ``--fake-state``.
"""

from __future__ import annotations

import sys

from tests import fake_schedd


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] != ["--fake-state"] or len(argv) < 2:
        print('{"error": "usage: fake_condor_job --fake-state FILE ARGS..."}')
        return 2
    fake_schedd.install(argv[1])
    from ink_spawner.condor_job import main as helper_main

    return helper_main(argv[2:])


if __name__ == "__main__":
    sys.exit(main())
