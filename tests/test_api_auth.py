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


def test_a_key_expires_even_if_never_unvouched(monkeypatch):
    key = api_auth.vouch("token-of-alice", {"name": "alice"})
    try:
        now = api_auth.time.monotonic()
        monkeypatch.setattr(api_auth.time, "monotonic", lambda: now + api_auth.VOUCH_SECONDS + 1)
        assert api_auth._vouched(handler(key), "token-of-alice") is None
        assert key not in api_auth._checked
    finally:
        api_auth.unvouch(key)


async def test_the_mcp_endpoint_never_takes_a_key_itself(monkeypatch):
    """The endpoint that hands out keys asks the hub every time: a revoked token with a live
    key is refused there, so a chain of MCP requests cannot outlive the token."""
    from tornado import web
    import pytest

    asked = []

    async def user_for_token(token, use_cache, sync):
        asked.append(token)
        return None  # revoked

    hub = SimpleNamespace(user_for_token=user_for_token, check_scopes=lambda *a: True, access_scopes=set())
    monkeypatch.setattr(api_auth, "hub_auth", lambda h: hub)
    monkeypatch.setattr(api_auth, "header_token", lambda h: "token-of-alice")
    monkeypatch.setattr(api_auth, "_unauthorized", lambda h, m: web.HTTPError(401, m))
    key = api_auth.vouch("token-of-alice", {"name": "alice"})
    try:
        h = handler(key)
        assert await api_auth.authenticate(h) == {"name": "alice"} and asked == []  # an inner request
        with pytest.raises(web.HTTPError) as refused:
            await api_auth.authenticate(h, accept_vouched=False)
        assert refused.value.status_code == 401 and asked == ["token-of-alice"]
    finally:
        api_auth.unvouch(key)
