"""``LoopTicks``: proof that an asyncio call does not block its event loop."""

from __future__ import annotations

import asyncio


class LoopTicks:
    """Counts 10 ms ticks of the running event loop from creation until ``stop``: a call
    that blocks the loop (instead of awaiting) stops the count meanwhile."""

    def __init__(self) -> None:
        self.count = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.count += 1

    def stop(self) -> int:
        """Stop counting; return the count."""
        self._task.cancel()
        return self.count
