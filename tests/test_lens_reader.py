"""The hub's reader of a session's Job Lens file (``ink_hub.lens``) on its own: the file is the
user's, so whatever it holds yields figures or nothing, never an error on the panel or the
admin page; an unchanged file is not parsed again."""

import json
import os
import pwd
from types import SimpleNamespace

import pytest

from ink_hub import lens
from ink_spawner.session import session_lens_path


@pytest.fixture
def home(tmp_path, monkeypatch):
    me = pwd.getpwuid(os.getuid())
    monkeypatch.setattr(lens.pwd, "getpwnam",
                        lambda name: SimpleNamespace(pw_dir=str(tmp_path), pw_uid=me.pw_uid))
    lens._parsed.clear()
    return tmp_path


def write(home, name, lines):
    path = session_lens_path(str(home), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def test_crafted_lines_yield_figures_or_nothing(home):
    bad = [
        [json.dumps({"type": "start", "t": "x"}), json.dumps({"t": 1})],
        ["[" * 100000 + "]" * 100000],
        [json.dumps({"type": "start", "t": 0, "interval": 5}), json.dumps({"t": 5, "cpu": "lots", "rss": [1]})],
        [json.dumps({"type": "start", "t": 0}), json.dumps({"t": 5, "cpu": 1e400})],
    ]
    for i, lines in enumerate(bad):
        write(home, f"s{i}", lines)
        figures = lens._figures("alice", f"s{i}", 2, 10)
        assert figures is None or isinstance(figures, dict)
        assert all(isinstance(v, float) for v in lens.cpu_series(figures))


def test_a_good_file_is_summarised_and_parsed_once(home, monkeypatch):
    path = write(home, "jupyter", [json.dumps({"type": "start", "t": 0, "interval": 5}),
                                   *(json.dumps({"t": 5 * i, "cpu": 50.0, "rss": 1 << 20}) for i in range(1, 5))])
    figures = lens._figures("alice", "jupyter", 1, 10)
    assert figures["interval"] == 5 and len(figures["samples"]) == 4
    assert lens.cpu_series(figures) == [50.0] * 4
    calls = []
    real_parse = lens.lens.parse
    monkeypatch.setattr(lens.lens, "parse", lambda data: calls.append(1) or real_parse(data))
    assert lens._figures("alice", "jupyter", 1, 10)["samples"] == figures["samples"]
    assert calls == []  # unchanged: the cached parse is used
    with open(path, "a") as f:
        f.write(json.dumps({"t": 25, "cpu": 100.0, "rss": 1 << 20}) + "\n")
    assert len(lens._figures("alice", "jupyter", 1, 10)["samples"]) == 5 and calls == [1]
