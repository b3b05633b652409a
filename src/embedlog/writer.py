"""Group commit: concurrent flushes in one process share one write transaction.

A thread that flushes queues its batches.  If no commit is running it becomes the
leader: it takes everything queued (its own and other threads'), writes it in one LMDB
transaction — one commit's fsyncs in ``durability="flush"`` — and wakes the threads
whose batches it carried once the commit returned (in ``"flush"``: once it is on disk,
``Env.make_durable``, so no ``flush()`` returns earlier).  Threads that queued while a
commit ran are carried by the next leader: the finishing leader hands leadership
straight to the oldest of them that is waiting.  Every waiting thread blocks on a lock of its own, released
exactly once — when its request is done or it becomes the leader — so a commit wakes
only the threads it carried and the next leader (no ``notify_all`` that every waiter
answers by taking the committer's lock again).  Across processes LMDB's writer lock
serialises commits; each process groups its own threads.

A request that cannot be written (its topic was deleted) fails alone: the leader
retries the rest of the group without it.  Within a request that need not be atomic (a
producer's flush, not a transaction), a batch that cannot be written fails alone too, as
Kafka fails a produce per partition: the batches for other topics and partitions are
written, and the failed ones carry their error (``AppendItem.error``).

A new leader first lets its group fill: when the previous commit carried several
requests (threads flushing in a loop), it waits until as many are queued, at most
half as long as that commit took and never over ``_MAX_FILL_S``.  Without it the
thread that comes back first commits nearly alone while the rest queue behind it, and
groups alternate between small and large (8 threads: ~4.5 requests a commit, with it
~8).  A lone thread never waits: its previous group was itself.

Interrupts (``KeyboardInterrupt`` from Ctrl-C, or any exception a signal handler
raises) may land between any two steps of a thread in ``wait``.  Whatever step was cut,
the thread puts the shared state right on its way out (``_recover``): a commit it had
not started goes back to the head of the queue for the next leader, the threads of a
commit it had finished are woken, and leadership passes on.  So no other thread, and no
later flush, waits forever for a thread that left.  A commit cut while LMDB wrote it
fails its other threads with ``InterruptedWriteError`` (their records may or may not
be stored), and the interrupted thread raises its own exception.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence

import lmdb

from .errors import EmbedlogError, InterruptedWriteError
from .storage import partition as plog
from .storage import schema
from .storage.store import AppendItem, Store

__all__ = ["GroupCommitter"]

_MAX_FILL_S = 0.002  # the longest a leader waits for its group to fill
_new_latch = threading.Lock
#: every committer of this process (a forked child resets them: ``_after_fork_in_child``)
_COMMITTERS: weakref.WeakSet[GroupCommitter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's other threads: a commit one of them led,
    or requests they queued, would keep the child's flushes waiting for ever.  Their
    records are the parent's to write; the child's committers start empty."""
    for committer in list(_COMMITTERS):
        committer._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Group:
    """The requests one leader commits in one transaction, and how that ended."""

    __slots__ = ("done", "error", "failed", "requests")

    def __init__(self, requests: list[_Request]) -> None:
        self.requests = requests
        self.done = False  # set once, in one step, when the commit ended (well or not)
        self.error: BaseException | None = None  # the whole group's
        self.failed: dict[int, BaseException] | None = None  # by request id, when one request was bad


class _Request:
    __slots__ = ("atomic", "durable", "extra", "group", "items", "latch")

    def __init__(self, items: Sequence[AppendItem], extra: Callable[[lmdb.Transaction], None] | None,
                 durable: bool = True, atomic: bool = True) -> None:
        self.items = items
        self.extra = extra
        #: all of it or nothing (a transaction); else a batch that cannot be written fails alone
        self.atomic = atomic or extra is not None
        #: on disk before its thread returns (a flush's); else a producer's background write,
        #: made durable by the next flush (``Env.make_durable_if_needed``)
        self.durable = durable
        self.group: _Group | None = None  # the commit that carried it (set by its leader)
        #: while its thread sleeps until a leader wakes it: a lock it blocks on (held)
        self.latch: threading.Lock | None = None

    @property
    def done(self) -> bool:
        group = self.group
        return group is not None and group.done

    @property
    def error(self) -> BaseException | None:
        group = self.group
        if group is None or not group.done:
            return None
        if group.error is not None:
            return group.error
        return None if group.failed is None else group.failed.get(id(self))


class GroupCommitter:
    """Serialises and groups this process's appends to one store. Thread-safe."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        #: while a leader waits for its group to fill: a held lock ``enqueue`` releases
        #: once the queue is that long (a bare lock, not a Condition: see ``_await_fill``)
        self._fill_latch: threading.Lock | None = None
        self._queue: list[_Request] = []
        #: the request whose thread leads (commits, or is about to), or None
        self._leader: _Request | None = None
        self._running: _Group | None = None  # the group the leader took and has not finished
        self._filling = 0  # while a leader waits: the queue length it waits for
        self._last_group = 1
        self._last_commit_s = 0.0
        _COMMITTERS.add(self)

    def _reset(self) -> None:
        """(In a forked child) Forget the parent's commits and requests, and its locks."""
        self._lock = threading.Lock()
        self._fill_latch = None
        self._queue = []
        self._leader = None
        self._running = None
        self._filling = 0
        self._last_group = 1

    def submit(self, items: Sequence[AppendItem],
               extra: Callable[[lmdb.Transaction], None] | None = None) -> _Request:
        """Queue ``items`` (and ``extra``); requests commit in the order they were queued."""
        req = _Request(items, extra)
        self.enqueue(req)
        return req

    @staticmethod
    def request(items: Sequence[AppendItem], extra: Callable[[lmdb.Transaction], None] | None = None,
                durable: bool = True, atomic: bool = True) -> _Request:
        """A request for ``enqueue`` (``submit`` in two steps, for a caller that must know,
        after an interrupt, whether it was queued: ``holds``).  ``atomic=False``: its
        batches may be written or fail one by one (see the module docstring)."""
        return _Request(items, extra, durable, atomic)

    def enqueue(self, req: _Request) -> None:
        with self._lock:
            if self._filling and len(self._queue) + 1 >= self._filling:
                latch, self._fill_latch = self._fill_latch, None
                if latch is not None:  # (the leader looks once this lock is free: req is queued then)
                    with contextlib.suppress(RuntimeError):
                        latch.release()
            self._queue.append(req)

    def holds(self, req: _Request) -> bool:
        """Whether ``req`` is queued, being committed or committed: it will be written."""
        with self._lock:
            return req.group is not None or any(r is req for r in self._queue)

    def wait(self, req: _Request) -> None:
        """Return once ``req`` is committed (leading a commit if none is running); raise
        its error.  Interrupted, it leaves ``req`` queued for a later commit unless a
        commit already carried it (a transaction's thread then calls ``cancel``)."""
        try:
            self._wait(req)
        except BaseException:
            with self._lock:
                self._recover(req)
            raise
        error = req.error
        if error is not None:
            raise error

    def _wait(self, req: _Request) -> None:
        lock = self._lock
        with lock:
            # (req.done spelled out: mypy would take the property as still False after the latch)
            if req.group is not None and req.group.done:
                return
            if self._leader is None:
                group = self._lead(req)
            else:  # another thread leads: sleep until it wakes us (done, or our turn to lead)
                latch = req.latch = _new_latch()
                latch.acquire()
                group = None
        if group is None:
            latch.acquire()  # released by a leader (which clears req.latch): req is done, or leads now
            if req.done:
                return
            with lock:
                group = self._lead(req)  # (leadership was handed to it)
        t0 = time.monotonic()
        try:
            self._commit(group)
        finally:
            if group.done:  # (else an interrupt came before the write began: _recover queues it again)
                elapsed = time.monotonic() - t0
                with lock:
                    self._last_group = len(group.requests)
                    self._last_commit_s = elapsed
                    self._finish(group)

    def _lead(self, req: _Request) -> _Group:
        """(Lock held) Take leadership for ``req``'s thread; return the group it commits."""
        self._leader = req
        target = self._last_group
        if target > 1 and len(self._queue) < target:
            self._await_fill(target)
        group = _Group(self._queue)
        self._running, self._queue = group, []  # (one step: no call between, so no interrupt)
        for other in group.requests:
            other.group = group
        return group

    def _finish(self, group: _Group) -> None:
        """(Lock held, ``group`` done) Wake the threads it carried; pass leadership on.
        Safe to run again after an interrupt cut it."""
        for other in group.requests:
            latch = other.latch
            if latch is not None:
                with contextlib.suppress(RuntimeError):  # (released by a run of this cut short)
                    latch.release()
                other.latch = None
        self._running = None
        self._hand_off()

    def _hand_off(self) -> None:
        """(Lock held, leadership ending) Hand leadership to the oldest queued request whose
        thread sleeps; with none, leave it free for the next to call ``wait``."""
        for nxt in self._queue:
            latch = nxt.latch
            if latch is not None:
                self._leader = nxt
                latch.release()
                nxt.latch = None
                return
        self._leader = None

    def _recover(self, req: _Request) -> None:
        """(Lock held) ``req``'s thread leaves ``wait`` on an exception, perhaps cut between
        any two steps: leave nothing that another thread, or a later flush, would wait for."""
        req.latch = None  # (asleep or just woken: no leader may count on this thread any more)
        group = self._running
        if group is not None and self._leader is req:  # it was committing
            if group.done:
                self._finish(group)
                return
            for r in group.requests:
                r.group = None  # (carried by no commit now: ``cancel`` may take one out)
            self._queue[:0] = group.requests  # not written: the next commit carries them
            self._running = None
        leader = self._leader
        if leader is req:
            self._hand_off()
        elif leader is not None and leader.latch is not None and self._running is None:
            # a hand-off cut around the new leader's latch release: release it (again: harmless)
            latch, leader.latch = leader.latch, None
            with contextlib.suppress(RuntimeError):
                latch.release()

    def cancel(self, req: _Request) -> None:
        """After an interrupt in ``req``'s thread (a transaction's commit, which must end
        written or not at all): take ``req`` out of the queue if no commit carries it, so
        that it is never written, else wait for that commit to end (a second interrupt
        ends the wait).  Either way the outcome is decided when this returns."""
        with self._lock:
            group = req.group
            if group is None:
                self._queue = [r for r in self._queue if r is not req]
                return
        while not group.done:
            time.sleep(0.0005)

    def _await_fill(self, target: int) -> None:
        """(Lock held) wait briefly for ``target`` requests to be queued.

        Not ``Condition.wait``: an interrupt landing in its Python code after the wait,
        before it takes the lock back, leaves the lock released, and the caller's ``with``
        then releases it again — or releases another thread's hold.  Here the lock is
        released as the first call of a ``try`` and taken back as the first call of its
        ``finally`` (CPython runs signal handlers only after a call returns, at a backward
        jump or on entering a function)."""
        wait_s = min(self._last_commit_s / 2, _MAX_FILL_S)
        latch = _new_latch()
        latch.acquire()
        self._fill_latch = latch
        self._filling = target
        lock = self._lock
        try:
            try:
                lock.release()  # (the first call in the try: no handler runs between the two)
                latch.acquire(True, wait_s)
            finally:
                lock.acquire()
        finally:
            self._filling = 0
            self._fill_latch = None

    def append(self, items: Sequence[AppendItem],
               extra: Callable[[lmdb.Transaction], None] | None = None) -> None:
        """Write ``items`` (and run ``extra``) atomically; return once committed."""
        self.wait(self.submit(items, extra))

    def _commit(self, group: _Group) -> None:
        """Write ``group`` in one transaction and mark it done, whatever happens.  A bad
        request fails alone; an interrupt (not an ``Exception``) is raised again after
        marking the others failed."""
        store = self._store
        requests = group.requests
        extras: tuple[Callable[[lmdb.Transaction], None], ...]
        if len(requests) == 1:
            items = requests[0].items
            extras = () if requests[0].extra is None else (requests[0].extra,)
            durable = requests[0].durable
        else:
            items = [item for req in requests for item in req.items]
            extras = tuple(req.extra for req in requests if req.extra is not None)
            # (a list, not any(<generator>): a generator any() leaves half-run is closed by
            # the GC later, and an interrupt landing in that close would be lost)
            durable = True in [req.durable for req in requests]

        def together(txn: lmdb.Transaction) -> None:
            # One append for the whole group: each partition's state is read and written
            # once per transaction, not once per request (fewer LMDB calls, each of which
            # may hand the GIL to another thread while this one holds the write lock).
            store.append_in(txn, items)
            for extra in extras:
                extra(txn)

        isolating = False
        try:
            try:
                store.write(together, durable=False, writes=True)  # the common case: nothing to isolate
            except EmbedlogError:
                if len(requests) == 1 and (requests[0].atomic or len(requests[0].items) < 2):
                    raise
                isolating = True
                group.failed = self._isolated(requests)  # one request is bad: let it fail alone
            else:  # (not in the try: whatever it raises, the group is not written again)
                store.appended()  # records to a leader's waiting followers first, then wake-ups
                # on disk before any flush returns; after the hand-off above, so that this
                # fsync overlaps the records' way to a replication leader's followers
                if durable:
                    store.env.make_durable()
            group.done = True
        except BaseException as exc:  # the transaction failed, so did every request
            if isinstance(exc, Exception):
                group.error = exc
                group.done = True
                return
            landed = None if isolating else self._landed(requests)
            if landed is False:
                raise  # nothing written: not done, so _recover queues the group again
            if landed:  # committed before the interrupt: the other threads' flushes succeed once it is on disk
                with contextlib.suppress(Exception):
                    store.appended()
                try:
                    if durable:  # (as below the write: a background write waits for the next flush)
                        store.env.make_durable()
                except Exception as failed:  # noqa: BLE001 - theirs to raise
                    group.error = failed
            else:
                group.error = InterruptedWriteError(
                    f"the write carrying these records was interrupted by {exc!r} in another thread of this "
                    "process: they may or may not be stored; read the partitions to know, and send again "
                    "what is missing")
            group.done = True
            raise

    def _landed(self, requests: list[_Request]) -> bool | None:
        """After an interrupt in the write of ``requests``: whether its transaction
        committed (its last batch is stored where the append put it), or None if that
        cannot be told (no records; the batch is gone again; the store cannot be read)."""
        last = None
        for req in requests:
            if req.items:
                last = req.items[-1]
        if last is None:
            return None
        if last.base_offset < 0:
            return False  # the append never reached it: the transaction was aborted
        tid, part, base, buf = last.topic_id, last.partition, last.base_offset, last.buf
        store = self._store

        def look(txn: lmdb.Transaction) -> bool | None:
            raw = txn.get(schema.batch_key(tid, part, base), db=store.dbs["batches"])
            if raw is not None:
                return bytes(raw) == bytes(buf)
            state = plog.load_state(txn, store.dbs, tid, part)
            return False if state is None or state.end_offset <= base else None  # (None: trimmed since)

        try:
            return store.read(look)
        except Exception:  # noqa: BLE001 - unknown, said as such
            return None

    def _isolated(self, requests: list[_Request]) -> dict[int, BaseException]:
        """Write ``requests`` in one transaction, each in a nested one so that a bad
        request fails alone; return the errors by request id."""
        store = self._store
        failed: dict[int, BaseException] = {}

        def isolated(txn: lmdb.Transaction) -> None:
            failed.clear()
            for req in requests:
                for item in req.items:
                    item.error = None
                try:
                    with store.env.nested(txn) as child:
                        store.append_in(child, req.items, memo=False)  # (a nested transaction may roll back alone)
                        if req.extra is not None:
                            req.extra(child)
                except EmbedlogError as exc:
                    if req.atomic or len(req.items) < 2:
                        failed[id(req)] = exc
                        continue
                    # batch by batch: the ones that can be written are
                    wrote = False
                    for item in req.items:
                        try:
                            with store.env.nested(txn) as child:
                                store.append_in(child, [item], memo=False)
                            wrote = True
                        except EmbedlogError as item_exc:
                            item.error = item_exc
                    if not wrote:  # (every batch failed: the request's error)
                        for item in req.items:
                            item.error = None
                        failed[id(req)] = exc

        store.write(isolated, notify=True)
        return failed
