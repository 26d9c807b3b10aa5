"""Hub-only Prometheus metrics (``/hub/metrics``): what only the hub does, Kerberos renewals.

Session and scheduler metrics are recorded by the spawner side (:mod:`ink_spawner.metrics`),
which never imports the hub; both register in prometheus_client's default registry, the one
JupyterHub serves.
"""

from __future__ import annotations

from prometheus_client import Counter

KERBEROS_RENEWALS = Counter(
    "ink_kerberos_renewals",
    "Kerberos ticket renewals by the hub's ticket keeper (result: ok or failed)",
    ["result"])

for _result in ("ok", "failed"):  # both series exist from the start: a rate of 0 is a fact
    KERBEROS_RENEWALS.labels(result=_result)
