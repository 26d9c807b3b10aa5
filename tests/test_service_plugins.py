"""Experiment services as plugins, with the template package examples/ink-service-example
(installed by scripts/install): the catalogue field, the Services tile in real Chromium for a
member experiment and not for another, the service's page through the hub's proxy and OAuth,
and the hub's access check that the service relies on."""

from __future__ import annotations

import pytest
import requests

from ink_hub.catalogue.load import CatalogueError, load_site
from ink_hub.service_plugins import available_services

from .harness import free_port
from .test_browser_pages import login


def test_the_template_plugin_is_installed():
    assert "example" in available_services(), "pip install -e examples/ink-service-example (scripts/install)"


def test_catalogue_refuses_an_uninstalled_service(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("experiments:\n  juno:\n    title: JUNO\n    apps: [jupyter]\n    services: [daq-shift]\n")
    with pytest.raises(CatalogueError) as e:
        load_site([str(site)])
    (problem,) = e.value.problems
    assert problem.startswith(f"{site}: experiments.juno.services")
    assert "'daq-shift' is not installed (installed: example" in problem
    site.write_text("experiments:\n  juno:\n    title: JUNO\n    apps: [jupyter]\n    services: ['<b>x']\n")
    with pytest.raises(CatalogueError, match="experiments.juno.services"):
        load_site([str(site)])


CATALOGUE = """
defaults: {{memory: 1G}}
experiments:
  monitor:
    title: Monitor shifters
    members: {{users: [alice]}}
    apps: [jupyter]
    services: [example]
  other:
    title: Other
    members: {{users: [bob]}}
    apps: [jupyter]
hub:
  InkServices:
    urls: {{example: "http://127.0.0.1:{port}"}}
"""


@pytest.fixture(scope="module")
def service_hub(tmp_path_factory, unix_users):
    from .harness import Hub

    hub = Hub(tmp_path_factory.mktemp("service-hub"), catalogue=CATALOGUE.format(port=free_port())).start()
    yield hub
    hub.stop()


@pytest.mark.hub
@pytest.mark.browser
def test_tile_and_page_for_members_only(service_hub, browser):
    hub = service_hub
    page = login(browser, hub, "alice")
    tile = page.locator("#ink-service-example")
    assert tile.inner_text().startswith("Example Monitor")
    tile.click()
    page.wait_for_url("**/services/example/", timeout=60_000)  # through the hub's OAuth, no consent page
    assert page.locator("#who").inner_text() == "Hello alice"
    assert page.locator("#experiments").inner_text() == "Through: monitor"
    page.context.close()

    page = login(browser, hub, "bob")
    assert page.locator("#ink-services .card").count() == 3  # Files, EShell, Jobs: no plugin tile
    assert page.locator("#ink-service-example").count() == 0
    response = page.goto(f"{hub.url}/services/example/")
    page.wait_for_selector("#error", timeout=60_000)
    assert response.status == 403 or "403" in page.locator("#error").inner_text()
    assert "members of the experiments" in page.locator("#error").inner_text()
    page.context.close()

    anonymous = browser.new_context().new_page()
    anonymous.goto(f"{hub.url}/services/example/")
    anonymous.wait_for_url("**/hub/login**", timeout=60_000)
    anonymous.context.close()


@pytest.mark.hub
def test_access_check_answers_only_the_service_itself(service_hub):
    hub = service_hub
    for user in ("alice", "bob"):
        hub.api("POST", f"/users/{user}")
    url = f"{hub.api_url}/ink/services/example/access/alice"
    # the test's own service token: another service may not ask about this one
    r = requests.get(url, headers={"Authorization": f"token {hub.token}"}, timeout=30)
    assert r.status_code == 403 and "'ink-test' cannot ask about 'example'" in r.text
    token = hub.user_token("alice")
    r = requests.get(url, headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 403 and "only the service itself" in r.text
    assert requests.get(url, timeout=30).status_code == 403
    # the service's own token (JupyterHub generated it and started the service with it)
    example_token = _service_token(hub, "example")
    for user, allowed, experiments in (("alice", True, ["monitor"]), ("bob", False, []), ("nobody", False, [])):
        r = requests.get(f"{hub.api_url}/ink/services/example/access/{user}",
                         headers={"Authorization": f"token {example_token}"}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json() == {"allowed": allowed, "experiments": experiments}


def _service_token(hub, name: str) -> str:
    """The managed service's token, read from its process's environment in /proc (root can)."""
    import os

    url = "http://127.0.0.1:" + hub.catalogue.split("127.0.0.1:")[1].split('"')[0]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except OSError:
            continue
        if env.get(b"JUPYTERHUB_SERVICE_NAME") == name.encode() and env.get(b"JUPYTERHUB_SERVICE_URL") == url.encode():
            return env[b"JUPYTERHUB_API_TOKEN"].decode()
    raise AssertionError("the example service process is not running")
