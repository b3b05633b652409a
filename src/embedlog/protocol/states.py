"""The two state machines' transition tables, in one place.

A transition is ``(state, direction, message type) -> next state``; a message that
has no entry for the current state is a protocol error (the connection closes).
``Error`` may be sent or received in any state but ``CLOSED`` and always closes.
"""

from __future__ import annotations

import enum

from .messages import Ack, Challenge, FetchRequest, FetchResponse, Heartbeat, Hello, Proof

__all__ = ["FOLLOWER_TRANSITIONS", "LEADER_TRANSITIONS", "RECV", "SEND", "State"]


class State(enum.Enum):
    """Where a connection is in its life."""

    START = "start"  #: follower: Hello not sent yet
    AWAIT_HELLO = "await-hello"  #: leader: waiting for the follower's Hello
    SEND_CHALLENGE = "send-challenge"  #: leader: Hello accepted, Challenge to send
    AWAIT_CHALLENGE = "await-challenge"  #: follower: Hello sent
    SEND_PROOF = "send-proof"  #: follower: the leader proved itself, Proof to send
    AWAIT_PROOF = "await-proof"  #: leader: Challenge sent
    STREAMING = "streaming"  #: authenticated: fetches, responses, acks, heartbeats
    CLOSED = "closed"  #: after an Error either way (or a protocol violation)


SEND = "send"
RECV = "recv"

FOLLOWER_TRANSITIONS: dict[tuple[State, str, type], State] = {
    (State.START, SEND, Hello): State.AWAIT_CHALLENGE,
    (State.AWAIT_CHALLENGE, RECV, Challenge): State.SEND_PROOF,
    (State.SEND_PROOF, SEND, Proof): State.STREAMING,
    (State.STREAMING, SEND, FetchRequest): State.STREAMING,
    (State.STREAMING, SEND, Ack): State.STREAMING,
    (State.STREAMING, SEND, Heartbeat): State.STREAMING,
    (State.STREAMING, RECV, FetchResponse): State.STREAMING,
    (State.STREAMING, RECV, Heartbeat): State.STREAMING,
}

LEADER_TRANSITIONS: dict[tuple[State, str, type], State] = {
    (State.AWAIT_HELLO, RECV, Hello): State.SEND_CHALLENGE,
    (State.SEND_CHALLENGE, SEND, Challenge): State.AWAIT_PROOF,
    (State.AWAIT_PROOF, RECV, Proof): State.STREAMING,
    (State.STREAMING, RECV, FetchRequest): State.STREAMING,
    (State.STREAMING, RECV, Ack): State.STREAMING,
    (State.STREAMING, RECV, Heartbeat): State.STREAMING,
    (State.STREAMING, SEND, FetchResponse): State.STREAMING,
    (State.STREAMING, SEND, Heartbeat): State.STREAMING,
}
