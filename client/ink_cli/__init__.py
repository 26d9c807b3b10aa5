"""``ink``: the INK Hub command-line client (jobs, files and sessions with a hub token).

Client only: it needs ``requests`` and ``tqdm`` and nothing of the cluster — no SSH, no Kerberos,
no scheduler commands. Everything runs on the hub side, as the user, in their portal server.
"""

__version__ = "0.1.0"
