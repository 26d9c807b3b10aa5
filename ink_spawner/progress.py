"""The progress events of one spawn, for JupyterHub's progress page and API.

The spawner records what really happens (submitted, queued with reason and position, running
on a node, the app starting) as it happens; :meth:`ProgressLog.events` is the async generator
JupyterHub's ``Spawner.progress()`` contract asks for. Each reader gets every event from the
first, however late it starts reading, and waits on an event instead of polling. One log lives
as long as its spawner; each start clears it, and a reader that began before the start (the
hub's progress page may open first) then reads the new spawn's events from the beginning.
"""

from __future__ import annotations

import asyncio


class ProgressLog:
    def __init__(self, log=None, name: str = ""):
        self.log, self.name = log, name
        self._events: list[dict] = []
        self._changed = asyncio.Event()
        self._spawn = 0  # incremented by clear()

    def clear(self) -> None:
        """A new spawn begins: forget the last one's events."""
        self._events = []
        self._spawn += 1
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def latest(self) -> str:
        """The newest message of the current spawn ('' before the first), for the panel."""
        return self._events[-1]["message"] if self._events else ""

    def emit(self, progress: int, message: str) -> None:
        if self.log is not None:
            self.log.info("%s: %s", self.name, message)
        self._events.append({"progress": progress, "message": message})
        self._wake()

    async def events(self):
        index, spawn = 0, self._spawn
        while True:
            if spawn != self._spawn:
                index, spawn = 0, self._spawn
            while index < len(self._events):
                yield self._events[index]
                index += 1
            changed = self._changed
            await changed.wait()
