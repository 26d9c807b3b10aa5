"""The MCP endpoint's vouching for a token it has just checked (ink_files_ext.api_auth): a key
counts only with its own token and only while the MCP request that made it runs."""

from __future__ import annotations

from types import SimpleNamespace

from ink_files_ext import api_auth


def handler(key: str | None):
    headers = {api_auth.CHECKED_HEADER: key} if key else {}
    return SimpleNamespace(request=SimpleNamespace(headers=headers))


def test_a_key_counts_only_with_its_token_and_until_unvouched():
    model = {"name": "alice", "scopes": ["custom:ink:jobs:read!user=alice"]}
    key = api_auth.vouch("token-of-alice", model)
    other = api_auth.vouch("token-of-bob", {"name": "bob"})
    try:
        assert api_auth._vouched(handler(key), "token-of-alice") is model
        assert api_auth._vouched(handler(key), "token-of-bob") is None  # another token with alice's key
        assert api_auth._vouched(handler(other), "token-of-alice") is None
        assert api_auth._vouched(handler(None), "token-of-alice") is None
        assert api_auth._vouched(handler("guessed"), "token-of-alice") is None
        assert len(key) >= 40 and key != other
    finally:
        api_auth.unvouch(key)
        api_auth.unvouch(other)
    assert api_auth._vouched(handler(key), "token-of-alice") is None  # the MCP request has ended
    assert not api_auth._checked
