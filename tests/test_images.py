"""images/ cannot be built here (no container engine): lint the worker image definitions and
check that they carry the versions pinned in scripts/app-versions, the ones CI tests with."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest

from .harness import REPO

IMAGES = REPO / "images"
DOCKER_INSTRUCTIONS = {"FROM", "ARG", "LABEL", "COPY", "ADD", "RUN", "ENV", "CMD", "ENTRYPOINT",
                       "WORKDIR", "USER", "EXPOSE", "VOLUME", "SHELL", "HEALTHCHECK", "STOPSIGNAL"}
APPTAINER_SECTIONS = {"files", "post", "environment", "labels", "runscript", "help", "setup",
                      "test", "startscript", "arguments"}


def pins() -> dict[str, str]:
    values = {}
    for line in (REPO / "scripts" / "app-versions").read_text().splitlines():
        m = re.match(r"^([A-Z_]+)=(.*)$", line)
        if m:
            values[m.group(1)] = shlex.split(m.group(2))[0] if m.group(2) else ""
    return values


def dockerfile_instructions(path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def apptainer_sections(path) -> tuple[dict[str, str], dict[str, str]]:
    header, sections, current = {}, {}, None
    for line in path.read_text().splitlines():
        if line.startswith("#") and current is None:
            continue
        m = re.match(r"^%(\w+)\s*$", line)
        if m:
            current = m.group(1)
            sections[current] = ""
        elif current is None:
            if line.strip():
                key, _, value = line.partition(":")
                header[key.strip()] = value.strip()
        else:
            sections[current] += line + "\n"
    return header, sections


def test_pins_are_complete_and_code_server_fits_node():
    p = pins()
    for key in ("CODE_SERVER_VERSION", "NODE_MAJOR", "JSROOT_VERSION", "DESKTOP_APT_PACKAGES",
                "DESKTOP_DNF_PACKAGES", "ENODE_APT_PACKAGES", "ENODE_DNF_PACKAGES"):
        assert p.get(key), key
    assert re.fullmatch(r"\d+\.\d+\.\d+", p["CODE_SERVER_VERSION"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", p["JSROOT_VERSION"])
    # code-server <= 4.100 is the last line that runs on Node 20
    major, minor, _ = map(int, p["CODE_SERVER_VERSION"].split("."))
    assert p["NODE_MAJOR"] != "20" or (major, minor) <= (4, 100)
    lock = json.loads((REPO / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@novnc/novnc"]["version"] == json.loads(
        (REPO / "package.json").read_text())["dependencies"]["@novnc/novnc"]


def test_dockerfile_is_well_formed_and_pinned():
    p = pins()
    instructions = dockerfile_instructions(IMAGES / "Dockerfile.worker")
    assert {k for k, _ in instructions} <= DOCKER_INSTRUCTIONS, instructions
    assert instructions[0] == ("FROM", "almalinux:9")
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG")
    assert args == {"CODE_SERVER_VERSION": p["CODE_SERVER_VERSION"], "JSROOT_VERSION": p["JSROOT_VERSION"],
                    "NODE_MAJOR": p["NODE_MAJOR"]}
    runs = [a for k, a in instructions if k == "RUN"]
    assert any("images/build-worker.sh" in r for r in runs)
    for r in runs:
        subprocess.run(["bash", "-n", "-c", r], check=True)
    cmd = [a for k, a in instructions if k == "CMD"]
    assert len(cmd) == 1 and json.loads(cmd[0])[0].endswith("/ink-session")
    assert not any(":latest" in a for _, a in instructions)


def test_apptainer_definition_is_well_formed_and_pinned():
    p = pins()
    header, sections = apptainer_sections(IMAGES / "worker.def")
    assert header == {"Bootstrap": "docker", "From": "almalinux:9"}
    assert set(sections) <= APPTAINER_SECTIONS, sections.keys()
    assert "images/build-worker.sh" in sections["post"]
    for name in ("post", "environment", "runscript"):
        subprocess.run(["bash", "-n", "-c", sections[name]], check=True)
    labels = dict(line.split(None, 1) for line in sections["labels"].split("\n") if line.strip())
    assert labels == {"io.ink-hub.code-server": p["CODE_SERVER_VERSION"],
                      "io.ink-hub.jsroot": p["JSROOT_VERSION"], "io.ink-hub.node": p["NODE_MAJOR"]}
    assert "ink-session" in sections["runscript"]


@pytest.mark.parametrize("script", ["images/build-worker.sh", "scripts/install-apps", "scripts/build-assets"])
def test_build_scripts_parse_and_use_the_pins(script):
    path = REPO / script
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    assert "app-versions" in text, f"{script} does not read the pins"
    # no version is written into the scripts themselves
    assert not re.search(r"code-server@\d|jsroot@\d", text)


def test_install_apps_installed_the_pinned_code_server():
    """The machine's code-server (scripts/install-apps) is the pinned one."""
    out = subprocess.run(["code-server", "--version"], capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == pins()["CODE_SERVER_VERSION"]
    jsroot = json.loads((REPO / "ink_proxy_ext" / "static" / "jsroot" / "package.json").read_text())
    assert jsroot["version"] == pins()["JSROOT_VERSION"]
