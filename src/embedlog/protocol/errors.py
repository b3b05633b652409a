"""Errors of the replication protocol (all ``EmbedlogError``s)."""

from __future__ import annotations

from ..errors import EmbedlogError, FencedLeaderError

__all__ = ["FencedLeaderError", "FollowerLeftError", "FrameError", "ProtocolError", "RemoteError"]


class ProtocolError(EmbedlogError):
    """The peer broke the protocol (a malformed or unexpected message); the connection
    is closed and nothing of the offending message was applied."""

    retriable = True


class FrameError(ProtocolError):
    """A frame failed its checksum, was over the size cap, or was malformed: the byte
    stream cannot be trusted any more, so the connection must be dropped (the
    follower reconnects and fetches again)."""


class RemoteError(ProtocolError):
    """The peer reported an error it hit while serving us."""


class FollowerLeftError(ProtocolError):
    """The follower said it stops following (``Follower.close()``): the leader drops it
    from the in-sync set at once, as Kafka's controlled shutdown shrinks the ISR, so
    ``acks="all"`` producers do not wait ``replica_lag_time_max_ms`` for it."""
