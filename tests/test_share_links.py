"""Share-link keys: the hub can verify what a user's server signed, before it starts anything."""

from __future__ import annotations

import os
import stat

import pytest
from tornado import web

from ink_files_ext.files.shares import ShareStore
from ink_hub.shares import ShareLinks


def test_hub_verifies_links_signed_by_the_owners_servers(tmp_path, monkeypatch):
    links = ShareLinks(secret_file=str(tmp_path / "secret"))
    store = ShareStore(str(tmp_path / "shares.json"), key=links.key_for("alice"))
    share = store.create(str(tmp_path), "directory", 3600, False)
    links.check("alice", share["token"])  # accepted
    assert store.check(share["token"])["id"] == share["id"]
    with pytest.raises(web.HTTPError) as e:
        links.check("bob", share["token"])  # another owner's name in the URL
    assert e.value.status_code == 403
    other = ShareStore(str(tmp_path / "other.json"))  # signed with a key the hub did not give
    with pytest.raises(web.HTTPError) as e:
        links.check("alice", other.create(str(tmp_path), "directory", 3600, False)["token"])
    assert e.value.status_code == 403
    with pytest.raises(web.HTTPError) as e:
        links.check("alice", "nonsense")
    assert e.value.status_code == 404
    import ink_hub.shares as hub_shares

    now = hub_shares.time.time()
    monkeypatch.setattr(hub_shares.time, "time", lambda: now + 3601)
    with pytest.raises(web.HTTPError) as e:
        links.check("alice", share["token"])
    assert e.value.status_code == 410
    assert stat.S_IMODE(os.stat(tmp_path / "secret").st_mode) == 0o600
    # the key survives a hub restart (same file), and differs per user
    again = ShareLinks(secret_file=str(tmp_path / "secret"))
    assert again.key_for("alice") == links.key_for("alice") != links.key_for("bob")
