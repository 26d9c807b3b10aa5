"""What every doctor check shares: its result, and running a command or an HTTP request with a
deadline. Commands are argv lists, never shell strings; a command that hangs (a scheduler
that does not answer) is killed at its deadline and reported as such."""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import asdict, dataclass

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"


@dataclass
class Result:
    check: str
    status: str
    detail: str
    fix: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Completed:
    argv: list[str]
    returncode: int | None  # None: killed at the deadline
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def why(self) -> str:
        if self.returncode is None:
            return f"{self.argv[0]} did not answer (killed after the time-out)"
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return f"{os.path.basename(self.argv[0])} exited {self.returncode}" + (f": {text[-1][:300]}" if text else "")


async def run(argv: list[str], timeout: float, stdin: bytes | None = None,
              env: dict | None = None) -> Completed:
    """Run ``argv`` (a list) with a deadline; the process group is killed if it is exceeded."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            start_new_session=True)
    except OSError as e:
        return Completed(argv, 127, "", f"cannot run {argv[0]}: {e.strerror}")
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        await proc.wait()
        return Completed(argv, None, "", "")
    return Completed(argv, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def which(command: str, path: str) -> str | None:
    """``command`` looked up in ``path`` (an absolute command is checked as it is)."""
    if os.path.isabs(command):
        return command if os.access(command, os.X_OK) else None
    return shutil.which(command, path=path)
