"""Group commit: concurrent flushes in one process share one write transaction.

A thread that flushes queues its batches.  If no commit is running it becomes the
leader: it takes everything queued (its own and other threads'), writes it in one LMDB
transaction — one fsync in ``durability="flush"`` — and wakes the threads whose
batches it carried once the commit returned (in ``"flush"``: once it is on disk, so
no ``flush()`` returns earlier).  Threads that queued while a commit ran are carried
by the next leader: the finishing leader hands leadership straight to the oldest of
them that is waiting.  Every waiting thread blocks on a lock of its own, released
exactly once — when its request is done or it becomes the leader — so a commit wakes
only the threads it carried and the next leader (no ``notify_all`` that every waiter
answers by taking the committer's lock again).  Across processes LMDB's writer lock
serialises commits; each process groups its own threads.

A request that cannot be written (its topic was deleted) fails alone: the leader
retries the rest of the group without it.

A new leader first lets its group fill: when the previous commit carried several
requests (threads flushing in a loop), it waits until as many are queued, at most
half as long as that commit took and never over ``_MAX_FILL_S``.  Without it the
thread that comes back first commits nearly alone while the rest queue behind it, and
groups alternate between small and large (8 threads: ~4.5 requests a commit, with it
~8).  A lone thread never waits: its previous group was itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import lmdb

from .errors import EmbedlogError
from .storage.store import AppendItem, Store

__all__ = ["GroupCommitter"]

_MAX_FILL_S = 0.002  # the longest a leader waits for its group to fill
_new_latch = threading.Lock


class _Request:
    __slots__ = ("done", "error", "extra", "items", "latch", "lead")

    def __init__(self, items: Sequence[AppendItem], extra: Callable[[lmdb.Transaction], None] | None) -> None:
        self.items = items
        self.extra = extra
        self.done = False
        self.error: BaseException | None = None
        #: while its thread waits for another leader: a lock it blocks on (held), released once
        self.latch: threading.Lock | None = None
        self.lead = False  # leadership was handed to it (its thread commits next)


class GroupCommitter:
    """Serialises and groups this process's appends to one store. Thread-safe."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._fill = threading.Condition(self._lock)  # the leader's group has filled
        self._queue: list[_Request] = []
        self._leader = False
        self._filling = 0  # while a leader waits: the queue length it waits for
        self._last_group = 1
        self._last_commit_s = 0.0

    def submit(self, items: Sequence[AppendItem],
               extra: Callable[[lmdb.Transaction], None] | None = None) -> _Request:
        """Queue ``items`` (and ``extra``); requests commit in the order they were queued."""
        req = _Request(items, extra)
        with self._lock:
            self._queue.append(req)
            if self._filling and len(self._queue) >= self._filling:
                self._fill.notify()
        return req

    def wait(self, req: _Request) -> None:
        """Return once ``req`` is committed (leading a commit if none is running)."""
        lock = self._lock
        latch = None
        group = None
        with lock:
            if req.done:
                pass
            elif self._leader and not req.lead:  # another thread leads: wait for it
                latch = req.latch = _new_latch()
                latch.acquire()
            else:
                group = self._lead(req)
        if latch is not None:
            try:
                latch.acquire()  # released by a leader: req is done, or leads now
            except BaseException:  # (interrupted: the request stays queued for the next leader)
                with lock:
                    req.latch = None
                    if req.lead and not req.done:
                        req.lead = False
                        self._hand_off()
                raise
            if not req.done:
                with lock:
                    group = self._lead(req)  # handed over (req.lead)
        if group is not None:
            t0 = time.monotonic()
            try:
                self._commit(group)
            finally:
                elapsed = time.monotonic() - t0
                with lock:
                    self._last_group = len(group)
                    self._last_commit_s = elapsed
                    for other in group:
                        if other.latch is not None:
                            other.latch.release()
                            other.latch = None
                    self._hand_off()
        if req.error is not None:
            raise req.error

    def _lead(self, req: _Request) -> list[_Request]:
        """(Lock held) Take leadership for ``req``'s thread; return the group it commits."""
        req.lead = False
        self._leader = True
        target = self._last_group
        if target > 1 and len(self._queue) < target:
            try:
                self._await_fill(target)
            except BaseException:  # (interrupted: hand leadership on; the request stays queued)
                self._hand_off()
                raise
        group = self._queue
        self._queue = []
        return group

    def _hand_off(self) -> None:
        """(Lock held, leadership ending) Hand leadership to the oldest queued request whose
        thread waits for it; with none waiting, leave it free for the next to call ``wait``."""
        for nxt in self._queue:
            if nxt.latch is not None:
                nxt.lead = True
                nxt.latch.release()
                nxt.latch = None
                self._leader = True
                return
        self._leader = False

    def _await_fill(self, target: int) -> None:
        """(Lock held) wait briefly for ``target`` requests to be queued."""
        deadline = time.monotonic() + min(self._last_commit_s / 2, _MAX_FILL_S)
        self._filling = target
        try:
            while len(self._queue) < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._fill.wait(remaining)
        finally:
            self._filling = 0

    def append(self, items: Sequence[AppendItem],
               extra: Callable[[lmdb.Transaction], None] | None = None) -> None:
        """Write ``items`` (and run ``extra``) atomically; return once committed."""
        self.wait(self.submit(items, extra))

    def _commit(self, group: list[_Request]) -> None:
        store = self._store
        extras: tuple[Callable[[lmdb.Transaction], None], ...]
        if len(group) == 1:
            items = group[0].items
            extras = () if group[0].extra is None else (group[0].extra,)
        else:
            items = [item for req in group for item in req.items]
            extras = tuple(req.extra for req in group if req.extra is not None)

        def together(txn: lmdb.Transaction) -> None:
            # One append for the whole group: each partition's state is read and written
            # once per transaction, not once per request (fewer LMDB calls, each of which
            # may hand the GIL to another thread while this one holds the write lock).
            store.append_in(txn, items)
            for extra in extras:
                extra(txn)

        failed: dict[int, BaseException] = {}
        try:
            try:
                store.write(together)  # the common case: nothing to isolate
            except EmbedlogError:
                if len(group) == 1:
                    raise
                failed = self._isolated(group)  # one request is bad: let it fail alone
            else:  # (not in the try: whatever it raises, the group is not written again)
                store.appended()  # records to a leader's waiting followers first, then wake-ups
        except BaseException as exc:  # noqa: BLE001 - the transaction failed, so did every request (re-raised by each)
            for req in group:
                req.error = exc
                req.done = True
            return
        for req in group:
            if failed:
                req.error = failed.get(id(req))
            req.done = True

    def _isolated(self, group: list[_Request]) -> dict[int, BaseException]:
        """Write ``group`` in one transaction, each request in a nested one so that a bad
        request fails alone; return the errors by request id."""
        store = self._store
        failed: dict[int, BaseException] = {}

        def isolated(txn: lmdb.Transaction) -> None:
            failed.clear()
            for req in group:
                try:
                    with store.env.nested(txn) as child:
                        store.append_in(child, req.items, memo=False)  # (a nested transaction may roll back alone)
                        if req.extra is not None:
                            req.extra(child)
                except EmbedlogError as exc:
                    failed[id(req)] = exc

        store.write(isolated, notify=True)
        return failed
