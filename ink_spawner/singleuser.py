"""``ink-singleuser``: jupyterhub-singleuser, started about 0.9 s sooner.

Importing jupyter-server pulls in jupyter-events → jsonschema, whose format checkers import
``rfc3987_syntax`` if it is installed (it is: ``jsonschema[format-nongpl]``), and that package
builds a Lark grammar at import time: 0.88 of the 1.6 s it takes to import
``jupyterhub.singleuser`` on these machines (``python -X importtime``; upstream
jupyter_server#1559). It only checks the ``iri`` / ``iri-reference`` string formats, which no
schema of Jupyter's uses (jupyter-events' metaschema uses ``uri``, checked by
``rfc3986_validator``). Marking the module as absent (``sys.modules[name] = None``, Python's
documented way to make an import fail) makes jsonschema skip those two checks, and every session
(each app, the portal) reaches its first response that much sooner.
"""

from __future__ import annotations

import sys

SLOW_UNUSED_IMPORTS = ("rfc3987_syntax",)


def main() -> int:
    for name in SLOW_UNUSED_IMPORTS:
        sys.modules.setdefault(name, None)
    from jupyterhub.singleuser import main as singleuser_main

    sys.argv[0] = "jupyterhub-singleuser"
    return singleuser_main()


if __name__ == "__main__":
    sys.exit(main())
