"""Group commit: concurrent flushes in one process share one write transaction.

A thread that flushes queues its batches.  If no commit is running it becomes the
leader: it takes everything queued (its own and other threads'), writes it in one LMDB
transaction — one fsync in ``durability="flush"`` — and wakes the threads whose
batches it carried.  Threads that queued while a commit ran are carried by the next
leader.  Across processes LMDB's writer lock serialises commits; each process groups
its own threads.

A request that cannot be written (its topic was deleted) fails alone: the leader
retries the rest of the group without it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import lmdb

from .errors import EmbedlogError
from .storage.store import AppendItem, Store

__all__ = ["GroupCommitter"]


class _Request:
    __slots__ = ("done", "error", "extra", "items")

    def __init__(self, items: Sequence[AppendItem], extra: Callable[[lmdb.Transaction], None] | None) -> None:
        self.items = items
        self.extra = extra
        self.done = False
        self.error: BaseException | None = None


class GroupCommitter:
    """Serialises and groups this process's appends to one store. Thread-safe."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Request] = []
        self._leader = False

    def submit(self, items: Sequence[AppendItem],
               extra: Callable[[lmdb.Transaction], None] | None = None) -> _Request:
        """Queue ``items`` (and ``extra``); requests commit in the order they were queued."""
        req = _Request(items, extra)
        with self._cond:
            self._queue.append(req)
        return req

    def wait(self, req: _Request) -> None:
        """Return once ``req`` is committed (leading a commit if none is running)."""
        with self._cond:
            while not req.done and self._leader:
                self._cond.wait()
            if req.done:
                if req.error is not None:
                    raise req.error
                return
            self._leader = True
            group = self._queue
            self._queue = []
        try:
            self._commit(group)
        finally:
            with self._cond:
                self._leader = False
                self._cond.notify_all()
        if req.error is not None:
            raise req.error

    def append(self, items: Sequence[AppendItem],
               extra: Callable[[lmdb.Transaction], None] | None = None) -> None:
        """Write ``items`` (and run ``extra``) atomically; return once committed."""
        self.wait(self.submit(items, extra))

    def _commit(self, group: list[_Request]) -> None:
        store = self._store

        def run(txn: lmdb.Transaction, req: _Request) -> None:
            store.append_in(txn, req.items, memo=False)  # (a nested transaction may roll back alone)
            if req.extra is not None:
                req.extra(txn)

        def together(txn: lmdb.Transaction) -> None:
            # One append for the whole group: each partition's state is read and written
            # once per transaction, not once per request (fewer LMDB calls, each of which
            # may hand the GIL to another thread while this one holds the write lock).
            store.append_in(txn, [item for req in group for item in req.items])
            for req in group:
                if req.extra is not None:
                    req.extra(txn)

        failed: dict[int, BaseException] = {}

        def isolated(txn: lmdb.Transaction) -> None:
            failed.clear()
            for req in group:  # nested transactions, so that one request can fail alone
                try:
                    with store.env.nested(txn) as child:
                        run(child, req)
                except EmbedlogError as exc:
                    failed[id(req)] = exc

        try:
            try:
                store.write(together, notify=True)  # the common case: nothing to isolate
            except EmbedlogError:
                if len(group) == 1:
                    raise
                store.write(isolated, notify=True)  # one request is bad: let it fail alone
        except BaseException as exc:  # noqa: BLE001 - the transaction failed, so did every request (re-raised by each)
            for req in group:
                req.error = exc
                req.done = True
            return
        for req in group:
            req.error = failed.get(id(req))
            req.done = True
