"""Mutual authentication over a shared secret: an HMAC challenge each way.

The follower sends a fresh nonce in ``Hello``; the leader answers with its own nonce
and ``HMAC(secret, "leader" | Hello | Challenge-without-mac)``; the follower checks it
(so a follower never talks to a leader that does not know the secret) and answers
``HMAC(secret, "follower" | Hello | Challenge)``, which the leader checks before it
accepts any other message.  The role labels stop one side's proof being replayed as
the other's; both nonces stop replay across connections; covering the whole Hello and
Challenge binds the node ids and epochs to the proof.

Without a secret (``None``: TLS client certificates authenticate, or ``insecure``) the
macs are empty, and a peer that expects a secret refuses an empty one.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["follower_mac", "leader_mac", "verify"]

_LEADER = b"embedlog-replication-v1 leader\x00"
_FOLLOWER = b"embedlog-replication-v1 follower\x00"


def leader_mac(secret: bytes | None, hello: bytes, challenge_unsigned: bytes) -> bytes:
    """The leader's proof (empty without a secret)."""
    if secret is None:
        return b""
    return hmac.new(secret, _LEADER + hello + challenge_unsigned, hashlib.sha256).digest()


def follower_mac(secret: bytes | None, hello: bytes, challenge: bytes) -> bytes:
    """The follower's proof (empty without a secret)."""
    if secret is None:
        return b""
    return hmac.new(secret, _FOLLOWER + hello + challenge, hashlib.sha256).digest()


def verify(expected: bytes, got: bytes) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(expected, got)
