"""The leader's end of one replication connection, as a state machine.

It authenticates the follower (``auth``), refuses a follower whose epoch is newer
than the leader's (then this leader is the fenced one), and afterwards hands the
application ``FetchRequest``, ``Ack`` and ``Heartbeat`` messages, dropping duplicated
or reordered requests and acks (a correlation id not above the last one seen), and
queues ``FetchResponse``/``Heartbeat``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from ..errors import AuthenticationError
from . import auth
from ._base import Connection
from .errors import FencedLeaderError, ProtocolError
from .frames import MAX_FRAME
from .messages import (
    PROTOCOL_VERSION,
    Ack,
    Authenticated,
    Challenge,
    Error,
    ErrorCode,
    FetchRequest,
    Hello,
    Message,
    Proof,
    encode,
)
from .states import LEADER_TRANSITIONS, State

__all__ = ["LeaderConnection"]


class LeaderConnection(Connection):
    """A leader's side of one connection."""

    transitions = LEADER_TRANSITIONS
    initial = State.AWAIT_HELLO

    def __init__(self, *, node_id: str, epoch: int, secret: bytes | None, nonce: bytes,
                 epoch_leaders: Sequence[tuple[int, str]] = (), max_frame: int = MAX_FRAME) -> None:
        super().__init__(max_frame)
        self.node_id = node_id
        self.epoch = epoch
        self._secret = secret
        self._nonce = nonce
        self._epoch_leaders = tuple(epoch_leaders)
        self._hello_bytes = b""
        self._challenge_bytes = b""
        #: the follower's Hello, once received
        self.peer: Hello | None = None
        #: a newer leader epoch an authenticated follower has: this leader was superseded
        self.superseded_by: int | None = None
        self._last_fetch = -1
        self._last_ack = -1

    def _handle(self, msg: Message) -> list[Any]:
        if isinstance(msg, Hello):
            return self._on_hello(msg)
        if isinstance(msg, Proof):
            assert self.peer is not None
            expected = auth.follower_mac(self._secret, self._hello_bytes, self._challenge_bytes)
            if not auth.verify(expected, msg.mac):
                raise AuthenticationError(
                    f"follower {self.peer.node_id!r} failed authentication: its proof does not match this "
                    "leader's secret (check --secret-file on both nodes)")
            if self.peer.epoch > self.epoch:  # (refused only now: an unproven claim could fence anyone)
                self.superseded_by = self.peer.epoch
                raise FencedLeaderError(
                    f"follower {self.peer.node_id!r} has leader epoch {self.peer.epoch}, newer than this leader's "
                    f"{self.epoch}: another node was promoted; restart this node as a follower of the new leader")
            self._decoder.max_frame = self.max_frame  # (proven: frames of any allowed size from now on)
            return [Authenticated(self.peer.node_id, self.peer.epoch)]
        if isinstance(msg, FetchRequest):
            if msg.correlation_id <= self._last_fetch:
                return []  # a duplicate or a request overtaken by a newer one
            self._last_fetch = msg.correlation_id
        elif isinstance(msg, Ack):
            if msg.correlation_id <= self._last_ack:
                return []
            self._last_ack = msg.correlation_id
        return [msg]

    def _on_hello(self, hello: Hello) -> list[Any]:
        self.peer = hello
        if hello.version != PROTOCOL_VERSION:
            self._refuse(ErrorCode.VERSION, ProtocolError(
                f"follower speaks replication protocol version {hello.version}; this leader speaks "
                f"{PROTOCOL_VERSION}: run the same embedlog version on both nodes"))
        # A follower with a newer epoch gets the Challenge too (it carries this leader's
        # true epoch): it is refused once its Proof checked out (``_handle``), and the
        # follower, which refuses an older leader, sends its Proof first.  So only an
        # authenticated peer can tell this leader it was superseded.
        self._hello_bytes = encode(hello)
        unsigned = Challenge(PROTOCOL_VERSION, self.node_id, self.epoch, self._nonce, self._epoch_leaders, b"")
        challenge = attrs.evolve(unsigned, mac=auth.leader_mac(self._secret, self._hello_bytes, encode(unsigned)))
        self._challenge_bytes = encode(challenge)
        self.send(challenge)
        return []

    def _refuse(self, code: ErrorCode, exc: Exception) -> None:
        self.send(Error(int(code), str(exc)))
        raise exc
