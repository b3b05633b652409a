"""The socket layer of replication: a thin loop around the sans-I/O cores.

``LeaderServer`` accepts follower connections (one thread each) and feeds their bytes
to a ``LeaderSession``; ``FollowerClient`` keeps one connection to the leader alive
(reconnecting with backoff) around a ``FollowerCore``.  Everything that decides what
to send lives in ``embedlog.replication`` and ``embedlog.protocol``; this package only
moves bytes, waits, and tells the cores the time.
"""

from .client import FollowerClient
from .common import parse_address
from .server import LeaderServer

__all__ = ["FollowerClient", "LeaderServer", "parse_address"]
