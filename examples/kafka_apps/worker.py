"""An asyncio worker written against aiokafka only, the way a FastAPI or FastStream app
runs one in its lifespan.

``submit`` is what an HTTP handler would call: it publishes a job to ``jobs``.  The
worker consumes ``jobs`` in a consumer group, "renders" each one, publishes the result
to ``results`` and commits the job's offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

JOBS = "jobs"
RESULTS = "results"


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


class Worker:
    """Start with ``await worker.start()`` (or ``async with lifespan(...)``)."""

    def __init__(self, bootstrap_servers: str, group_id: str = "renderer") -> None:
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.processed = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, value_serializer=_dumps)
        self.consumer = AIOKafkaConsumer(JOBS, bootstrap_servers=self.bootstrap_servers, group_id=self.group_id,
                                         auto_offset_reset="earliest", enable_auto_commit=False,
                                         value_deserializer=json.loads)
        await self.producer.start()
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())

    async def submit(self, job_id: str, width: int, height: int) -> None:
        """What the HTTP handler does: queue a job."""
        assert self.producer is not None
        await self.producer.send_and_wait(JOBS, {"id": job_id, "width": width, "height": height},
                                          key=job_id.encode())

    @staticmethod
    async def render(job: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)  # real work would await I/O here
        return {"id": job["id"], "pixels": job["width"] * job["height"]}

    async def _run(self) -> None:
        assert self.consumer is not None
        assert self.producer is not None
        async for msg in self.consumer:
            result = await self.render(msg.value)
            await self.producer.send_and_wait(RESULTS, result, key=msg.key)
            await self.consumer.commit()
            self.processed += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()


@contextlib.asynccontextmanager
async def lifespan(bootstrap_servers: str) -> AsyncIterator[Worker]:
    """FastAPI-style lifespan: the worker runs while the app serves."""
    worker = Worker(bootstrap_servers)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()
