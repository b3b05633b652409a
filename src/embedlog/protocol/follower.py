"""The follower's end of one replication connection, as a state machine.

It opens with ``Hello``, checks the leader's proof (mutual authentication) and epoch
(a leader older than the follower is fenced: ``FencedLeaderError``), answers with its
own proof, and afterwards hands the application ``FetchResponse`` and ``Heartbeat``
messages.  Only the response to the one outstanding ``FetchRequest`` is delivered:
duplicated, stale or reordered responses are dropped, so nothing is applied twice or
out of turn.
"""

from __future__ import annotations

from typing import Any

from ..errors import AuthenticationError
from . import auth
from ._base import Connection
from .errors import FencedLeaderError, ProtocolError
from .frames import MAX_FRAME, PROVEN_MAX_FRAME
from .messages import (
    PROTOCOL_VERSION,
    Authenticated,
    Challenge,
    FetchRequest,
    FetchResponse,
    Hello,
    Message,
    Proof,
    encode,
)
from .states import FOLLOWER_TRANSITIONS, State

__all__ = ["FollowerConnection"]


def fenced_leader_message(address: str | None, leader_epoch: int | None, epoch: int) -> str:
    """What a follower says when it refuses a leader older than itself."""
    at = f" at {address}" if address else ""
    has = f"epoch {leader_epoch}, lower than" if leader_epoch is not None else "an epoch lower than"
    return (f"the leader{at} has {has} this node's epoch {epoch}, so it is a fenced old leader: start that node "
            "as a follower of this one (or of the node that now leads); this node was left as it was")


class FollowerConnection(Connection):
    """A follower's side of one connection."""

    transitions = FOLLOWER_TRANSITIONS
    initial = State.START

    def __init__(self, *, node_id: str, epoch: int, secret: bytes | None, nonce: bytes,
                 max_frame: int = MAX_FRAME, address: str | None = None) -> None:
        super().__init__(max_frame)
        #: the leader's address, for messages
        self.address = address
        #: the error this follower raised refusing a leader older than itself, if it did
        self.refused: FencedLeaderError | None = None
        self.node_id = node_id
        self.epoch = epoch
        self._secret = secret
        self._hello = Hello(PROTOCOL_VERSION, node_id, epoch, nonce)
        self._hello_bytes = b""
        #: the leader's Challenge, once received and verified
        self.peer: Challenge | None = None
        #: correlation id of the FetchRequest awaiting its response (``None``: none)
        self.outstanding: int | None = None
        self.dropped = 0

    def start(self) -> None:
        """Queue the Hello that opens the connection."""
        self._hello_bytes = encode(self._hello)
        self.send(self._hello)

    def send(self, message: Message) -> None:
        """Queue a message (remembering a FetchRequest as the one outstanding)."""
        super().send(message)
        if isinstance(message, FetchRequest):
            self.outstanding = message.correlation_id

    def _handle(self, msg: Message) -> list[Any]:
        if isinstance(msg, Challenge):
            return self._on_challenge(msg)
        if isinstance(msg, FetchResponse):
            if msg.correlation_id != self.outstanding:
                self.dropped += 1
                return []
            self.outstanding = None
        return [msg]

    def _on_challenge(self, ch: Challenge) -> list[Any]:
        if ch.version != PROTOCOL_VERSION:
            raise ProtocolError(f"leader speaks replication protocol version {ch.version}; this follower "
                                f"speaks {PROTOCOL_VERSION}: run the same embedlog version on both nodes")
        unsigned = encode(Challenge(ch.version, ch.node_id, ch.epoch, ch.nonce, ch.epoch_leaders, b""))
        if not auth.verify(auth.leader_mac(self._secret, self._hello_bytes, unsigned), ch.mac):
            if self._secret is None:
                why = ("it signs with a shared secret and this follower has none (insecure): give the follower the "
                       "leader's secret (secret=, --secret-file)")
            elif not ch.mac:
                why = ("it runs without a secret (insecure) and this follower has one: give both nodes the same "
                       "secret, or run both insecure")
            else:
                why = "its proof does not match this follower's secret (check --secret-file on both nodes)"
            raise AuthenticationError(f"leader {ch.node_id!r} failed authentication: {why}; nothing was sent to it")
        self.peer = ch
        # (proven: frames of any allowed size from now on; by default any the format allows,
        # as a batch over a smaller cap would stall replication)
        self._decoder.max_frame = PROVEN_MAX_FRAME if self.max_frame == MAX_FRAME else self.max_frame
        self.send(Proof(auth.follower_mac(self._secret, self._hello_bytes, encode(ch))))
        if ch.epoch < self.epoch:  # (after the Proof: the leader, told by a proven peer, stops taking writes)
            self.refused = FencedLeaderError(fenced_leader_message(self.address, ch.epoch, self.epoch))
            raise self.refused
        return [Authenticated(ch.node_id, ch.epoch, ch.epoch_leaders)]
