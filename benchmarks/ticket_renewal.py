"""How much the hub's Kerberos ticket keeping costs, against a real MIT KDC (a k5test realm).

Measures, for N users: a password login (kinit), a renewal, and TicketKeeper.fresh_ticket
when there is nothing to renew (what each session's periodic fetch costs the hub) and when
all N users need a renewal at once (the worst case after a hub restart). The users' auth_state
is kept in memory here: the hub's decryption of it (Fernet) is not included. Needs the KDC
packages that scripts/install adds (krb5-kdc, krb5-admin-server, krb5-user).

    .venv/bin/python benchmarks/ticket_renewal.py [--users 50]

Last line: RESULT kinit_ms=... renew_ms=... fresh_noop_us=... renew_all_s=...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ink_hub import kerberos  # noqa: E402
from tests.test_kerberos import free_portbase  # noqa: E402


class User:
    def __init__(self, name, ticket):
        self.name = name
        self.state = {"kerberos": ticket.to_state()}

    async def get_auth_state(self):
        return dict(self.state)

    async def save_auth_state(self, state):
        self.state = state


async def measure(users: int) -> str:
    import k5test

    realm = k5test.K5Realm(portbase=free_portbase(), get_creds=False, create_host=False)
    try:
        os.environ.update(realm.env)
        names = [f"bench{i}" for i in range(users)]
        for name in names:
            realm.addprinc(f"{name}@{realm.realm}", f"pw-{name}")
        kinit_ms, tickets = [], []
        for name in names:
            t0 = time.perf_counter()
            tickets.append(kerberos.kinit_password(f"{name}@{realm.realm}", f"pw-{name}",
                                                   lifetime=3600, renew_lifetime=86400))
            kinit_ms.append((time.perf_counter() - t0) * 1000)
        renew_ms = []
        for ticket in tickets[:20]:
            t0 = time.perf_counter()
            kerberos.renew(ticket)
            renew_ms.append((time.perf_counter() - t0) * 1000)

        hub_users = [User(n, t) for n, t in zip(names, tickets)]
        quiet = kerberos.TicketKeeper(renew_before=60)  # nothing to renew
        t0 = time.perf_counter()
        rounds = 20
        for _ in range(rounds):
            await asyncio.gather(*[quiet.fresh_ticket(u) for u in hub_users])
        fresh_noop_us = (time.perf_counter() - t0) / (rounds * users) * 1e6

        eager = kerberos.TicketKeeper(renew_before=7200)  # every ticket needs renewing
        t0 = time.perf_counter()
        await asyncio.gather(*[eager.fresh_ticket(u) for u in hub_users])
        renew_all_s = time.perf_counter() - t0
        renewed = sum(1 for u in hub_users if u.state["kerberos"]["ccache"] != tickets[hub_users.index(u)].to_state()["ccache"])
        assert renewed == users, f"only {renewed} of {users} renewed"
    finally:
        realm.stop()
    return (f"RESULT users={users} kinit_ms={statistics.median(kinit_ms):.1f} "
            f"renew_ms={statistics.median(renew_ms):.1f} fresh_noop_us={fresh_noop_us:.0f} "
            f"renew_all_s={renew_all_s:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    print(asyncio.run(measure(args.users)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
