"""The replication protocol, sans-I/O: frames, messages and the two state machines.

Nothing in this package opens a socket, starts a thread, reads a clock or touches
storage.  ``FollowerConnection`` and ``LeaderConnection`` take the bytes a transport
received and return events (messages and ``Authenticated``), and queue the bytes to
send; the replication layer (``embedlog.replication``) does the storage work and the
socket layer (``embedlog.net``) moves the bytes, in the style of h11.
"""

from .errors import FencedLeaderError, FollowerLeftError, FrameError, ProtocolError, RemoteError
from .follower import FollowerConnection
from .frames import MAX_FRAME, FrameDecoder, encode_frame
from .leader import LeaderConnection
from .messages import (
    PROTOCOL_VERSION,
    Ack,
    Authenticated,
    Challenge,
    Diverging,
    Error,
    ErrorCode,
    FetchPartition,
    FetchRequest,
    FetchResponse,
    Heartbeat,
    Hello,
    Metadata,
    PartitionData,
    PartitionError,
    Proof,
    TopicRecord,
    decode,
    encode,
)
from .states import State

__all__ = [
    "MAX_FRAME",
    "PROTOCOL_VERSION",
    "Ack",
    "Authenticated",
    "Challenge",
    "Diverging",
    "Error",
    "ErrorCode",
    "FencedLeaderError",
    "FetchPartition",
    "FetchRequest",
    "FetchResponse",
    "FollowerConnection",
    "FollowerLeftError",
    "FrameDecoder",
    "FrameError",
    "Heartbeat",
    "Hello",
    "LeaderConnection",
    "Metadata",
    "PartitionData",
    "PartitionError",
    "Proof",
    "ProtocolError",
    "RemoteError",
    "State",
    "TopicRecord",
    "decode",
    "encode",
    "encode_frame",
]
