"""Backend.run collects a command's whole output: a scheduler listing longer than one pipe read
(a busy site's squeue) must not lose its last jobs, which would make them look ended."""

from __future__ import annotations

import sys

from ink_spawner.backends import base
from ink_spawner.backends.local import LocalBackend


async def test_run_returns_all_of_a_long_output():
    lines = 40_000  # ~1.2 MB, written in many chunks: far more than one pipe read
    script = ("import sys, time\n"
              f"for i in range({lines}):\n"
              "    sys.stdout.write(f'{i:08d}|RUNNING|None|vm|N/A|debug|1|2026\\n')\n"
              "    if i % 5000 == 0: sys.stdout.flush(); time.sleep(0.01)\n")
    result = await LocalBackend().run([sys.executable, "-c", script])
    out = result.stdout.splitlines()
    assert result.returncode == 0 and len(out) == lines
    assert out[-1].startswith(f"{lines - 1:08d}|")


async def test_run_caps_what_it_keeps(monkeypatch):
    monkeypatch.setattr(base, "OUTPUT_CAP", 100_000)
    script = "import sys\nfor _ in range(50): sys.stdout.write('x' * 10_000); sys.stdout.flush()\n"
    result = await LocalBackend().run([sys.executable, "-c", script])
    assert result.returncode == 0 and len(result.stdout) == 100_000
