"""The replication protocol without sockets: frames (fuzzed), messages, the two state
machines, and leader/follower cores over real LMDB stores wired by an in-memory
channel that loses, duplicates, reorders and corrupts frames."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embedlog
from embedlog import TopicPartition
from embedlog.codec import batch as codec
from embedlog.errors import AuthenticationError, EmbedlogError, NotLeaderError, OffsetOutOfRangeError
from embedlog.protocol import (
    PROTOCOL_VERSION,
    Ack,
    Authenticated,
    Challenge,
    Diverging,
    Error,
    ErrorCode,
    FencedLeaderError,
    FetchPartition,
    FetchRequest,
    FetchResponse,
    FollowerConnection,
    FrameDecoder,
    FrameError,
    Heartbeat,
    Hello,
    LeaderConnection,
    Metadata,
    PartitionData,
    Proof,
    ProtocolError,
    State,
    TopicRecord,
    auth,
    decode,
    encode,
    encode_frame,
)
from embedlog.protocol.frames import BIG_FRAME, HANDSHAKE_MAX_FRAME, HEADER, MAX_FRAME, frame_parts
from embedlog.protocol.messages import AckPartition
from embedlog.protocol.states import FOLLOWER_TRANSITIONS, LEADER_TRANSITIONS
from embedlog.replication import FollowerCore, LeaderCore
from embedlog.storage import partition as plog
from embedlog.storage import replica
from procs import harness  # tests/procs/harness.py (tests/ is on sys.path)
from procs.harness import store_read

Log = embedlog.Log
_RUNS = itertools.count()


# == frames ========================================================================================
def test_frame_roundtrip_and_caps() -> None:
    payloads = [b"\x07" + bytes(range(n % 256)) * (n // 256 + 1) for n in (0, 1, 300, 70_000)]
    data = b"".join(encode_frame(p) for p in payloads)
    dec = FrameDecoder()
    assert dec.feed(data) == payloads
    assert dec.pending == 0
    with pytest.raises(ValueError):
        encode_frame(b"")
    small = FrameDecoder(max_frame=100)
    with pytest.raises(FrameError, match="outside"):
        small.feed(encode_frame(b"x" * 101))
    with pytest.raises(FrameError):  # dead after an error
        small.feed(encode_frame(b"x"))
    zero = FrameDecoder()
    with pytest.raises(FrameError):
        zero.feed(HEADER.pack(0, zlib.crc32(HEADER.pack(0, 0)[:4])))


def test_large_frames_chunked_and_framed_from_parts() -> None:
    """A frame of ``big`` bytes or more is received into its own buffer, across chunks
    that also carry the frames around it; ``frame_parts`` frames exactly the joined parts."""
    parts = [b"\x05", bytes(range(256)) * 1000, b"tail"]
    large = b"".join(parts)
    assert b"".join(frame_parts(parts)) == encode_frame(large)
    data = encode_frame(b"a") + encode_frame(large) + encode_frame(b"bc") + encode_frame(large)
    for step in (1, 7, 4096, 100_003, len(data)):
        dec = FrameDecoder(big=1000)
        out: list[bytes] = []
        for i in range(0, len(data), step):
            out.extend(dec.feed(data[i:i + step]))
        assert out == [b"a", large, b"bc", large]
        assert dec.pending == 0
    damaged = bytearray(encode_frame(large))
    damaged[-1] ^= 1
    dec = FrameDecoder(big=1000)
    dec.feed(damaged[:5000])
    assert dec.pending == 5000
    with pytest.raises(FrameError, match="checksum"):
        dec.feed(damaged[5000:])
    with pytest.raises(FrameError):
        dec.feed(encode_frame(b"x"))


def test_a_large_frame_s_buffer_follows_the_bytes_received_not_the_length_claimed() -> None:
    """A header claiming a huge frame costs the memory of what arrived (doubling from
    ``grow_from``), not its claimed length; such a frame received in pieces, through
    ``feed`` or through ``recv_buffer``/``received`` (``recv_into``), comes out whole."""
    dec = FrameDecoder(max_frame=MAX_FRAME)
    dec.feed(HEADER.pack(MAX_FRAME, 0) + bytes(70_000))
    assert dec.under_way == MAX_FRAME
    view = dec.recv_buffer()
    assert view is not None
    assert len(view) <= 4 << 20  # (not the 64 MiB claimed)
    payload = bytes(range(256)) * 300
    data = encode_frame(payload)
    for step in (1, 999, 5000):
        fed = FrameDecoder(big=100, grow_from=64)
        out: list[Any] = []
        for i in range(0, len(data), step):
            out.extend(fed.feed(data[i:i + step]))
        assert [bytes(p) for p in out] == [payload]
        into = FrameDecoder(big=100, grow_from=64)
        got = into.feed(data[:200])
        pos = 200
        while not got:
            buf = into.recv_buffer()
            assert buf is not None
            n = min(len(buf), step, len(data) - pos)
            buf[:n] = data[pos:pos + n]
            pos += n
            got = into.received(n)
        assert [bytes(p) for p in got] == [payload]
        assert pos == len(data)


def test_frame_checksum_covers_the_length() -> None:
    frame = bytearray(encode_frame(b"abcdef"))
    frame[0] -= 1  # claims 5 bytes: the checksum no longer matches
    with pytest.raises(FrameError, match="checksum"):
        FrameDecoder().feed(bytes(frame))


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 10_000), max_size=8), st.sampled_from([BIG_FRAME, 1, 9]),
       st.sampled_from([1 << 20, 1, 5]))
def test_frame_decoder_fuzz_any_input(data: bytes, cuts: list[int], big: int, grow_from: int) -> None:
    """Any bytes, whole or in chunks: payloads, or FrameError; the same either way
    (``big``: from which size a frame is received into a buffer of its own; ``grow_from``:
    that buffer's first size, doubled as bytes arrive)."""

    def run(pieces: list[bytes]) -> tuple[list[bytes], bool]:
        dec = FrameDecoder(max_frame=1 << 16, big=big, grow_from=grow_from)
        out: list[bytes] = []
        try:
            for piece in pieces:
                out.extend(dec.feed(piece))
        except FrameError:
            return out, True
        return out, False

    whole = run([data])
    chunked = run(_chunks(data, cuts))
    assert whole == chunked
    for payload in whole[0]:
        with contextlib.suppress(ProtocolError):  # one message, or refused with ProtocolError
            decode(payload)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=6),
       st.lists(st.integers(0, 5000), max_size=6), st.integers(0, 10_000), st.integers(1, 255),
       st.sampled_from([BIG_FRAME, 1, 9]), st.sampled_from([1 << 20, 1, 5]))
def test_frame_decoder_never_returns_a_damaged_payload(payloads: list[bytes], cuts: list[int], where: int,
                                                       flip: int, big: int, grow_from: int) -> None:
    data = bytearray(b"".join(encode_frame(p) for p in payloads))
    data[where % len(data)] ^= flip
    dec = FrameDecoder(max_frame=1 << 16, big=big, grow_from=grow_from)
    out: list[bytes] = []
    failed = False
    try:
        for piece in _chunks(bytes(data), cuts):
            out.extend(dec.feed(piece))
    except FrameError:
        failed = True
    assert out == payloads[:len(out)]  # only intact frames come out, in order
    assert failed or dec.pending > 0 or len(out) < len(payloads)


# == messages ========================================================================================
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
text = st.text(max_size=20)
blob = st.binary(max_size=40)
MESSAGES = st.one_of(
    st.builds(Hello, st.integers(0, 65535), text, i32, blob),
    st.builds(Challenge, st.integers(0, 65535), text, i32, blob, st.lists(st.tuples(i32, text), max_size=3).map(tuple),
              blob),
    st.builds(Proof, blob),
    st.builds(FetchRequest, u64, text, blob, blob, u32,
              st.lists(st.builds(FetchPartition, u32, u32, u64, i32), max_size=4).map(tuple)),
    st.builds(FetchResponse, u64, i32, st.booleans(),
              st.none() | st.builds(Metadata, u32, st.lists(st.builds(TopicRecord, text, blob), max_size=3).map(tuple)),
              st.none() | st.lists(st.tuples(blob, blob), max_size=3).map(tuple),
              st.lists(st.builds(PartitionData, u32, u32, st.integers(0, 255), u64, u64, u64,
                                 st.none() | st.builds(Diverging, i32, st.integers(-(2**63), 2**63 - 1)),
                                 st.lists(blob, max_size=3).map(tuple)), max_size=3).map(tuple)),
    st.builds(Ack, u64, st.lists(st.builds(AckPartition, u32, u32, u64), max_size=4).map(tuple)),
    st.builds(Heartbeat, st.integers(-(2**63), 2**63 - 1)),
    st.builds(Error, st.integers(0, 65535), text),
)


@settings(max_examples=400, deadline=None)
@given(MESSAGES)
def test_message_roundtrip(msg: Any) -> None:
    assert decode(encode(msg)) == msg


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_message_decoder_fuzz(payload: bytes) -> None:
    try:
        msg = decode(payload)
    except ProtocolError:
        return
    assert encode(msg) == payload  # what decodes is exactly one message


@settings(max_examples=200, deadline=None)
@given(MESSAGES, st.integers(0, 10_000), st.integers(0, 10_000))
def test_truncated_or_extended_messages_are_refused(msg: Any, cut: int, extra: int) -> None:
    payload = encode(msg)
    short = payload[: cut % len(payload)]
    with pytest.raises(ProtocolError):
        decode(short)
    with pytest.raises(ProtocolError):
        decode(payload + bytes([extra % 256]))


# == the state machines ===============================================================================
def _pair(leader_secret: bytes | None = b"k", follower_secret: bytes | None = b"k", leader_epoch: int = 3,
          follower_epoch: int = 2) -> tuple[LeaderConnection, FollowerConnection]:
    leader = LeaderConnection(node_id="L", epoch=leader_epoch, secret=leader_secret, nonce=b"n" * 32,
                              epoch_leaders=((0, "L"), (3, "L")))
    follower = FollowerConnection(node_id="F", epoch=follower_epoch, secret=follower_secret, nonce=b"m" * 32)
    return leader, follower


def _shake(leader: LeaderConnection, follower: FollowerConnection) -> tuple[list[Any], list[Any]]:
    follower.start()
    lev = leader.receive_data(follower.data_to_send())
    fev = follower.receive_data(leader.data_to_send())
    lev += leader.receive_data(follower.data_to_send())
    return lev, fev


def test_handshake_authenticates_both_ways_then_streams() -> None:
    leader, follower = _pair()
    lev, fev = _shake(leader, follower)
    assert lev == [Authenticated("F", 2)]
    assert fev == [Authenticated("L", 3, ((0, "L"), (3, "L")))]
    assert leader.state is follower.state is State.STREAMING
    req = FetchRequest(1, "F", b"", b"", 100, (FetchPartition(1, 0, 5, 0),))
    follower.send(req)
    follower.send(Heartbeat(7))
    wire = follower.data_to_send()
    assert leader.receive_data(wire) == [req, Heartbeat(7)]
    resp = FetchResponse(1, 3, True, None, None, ())
    leader.send(resp)
    stale = FetchResponse(0, 3, True, None, None, ())
    leader.send(stale)
    assert follower.receive_data(leader.data_to_send()) == [resp]  # the stale one is dropped
    assert follower.dropped == 1
    # duplicated and overtaken requests and acks are dropped by the leader
    follower.send(req)
    follower.send(Ack(4, ()))
    follower.send(Ack(4, ()))
    follower.send(Ack(3, ()))
    assert leader.receive_data(follower.data_to_send()) == [Ack(4, ())]


def test_no_secret_on_both_sides_is_allowed() -> None:
    leader, follower = _pair(None, None)
    lev, fev = _shake(leader, follower)
    assert lev
    assert fev
    assert leader.state is State.STREAMING


@pytest.mark.parametrize(("ls", "fs", "why"), [(b"k", b"wrong", "does not match this follower's secret"),
                                               (b"k", None, "this follower has none"),
                                               (None, b"k", "runs without a secret")])
def test_wrong_secret_fails_on_the_follower_before_it_proves_anything(ls: bytes | None, fs: bytes | None,
                                                                      why: str) -> None:
    """The error says which side lacks a secret (a follower without one was told its
    secret did not match)."""
    leader, follower = _pair(ls, fs)
    follower.start()
    leader.receive_data(follower.data_to_send())
    with pytest.raises(AuthenticationError, match=why):
        follower.receive_data(leader.data_to_send())
    assert follower.state is State.CLOSED
    err = follower.data_to_send()  # it tells the leader, and sends no proof
    with pytest.raises(AuthenticationError):
        leader.receive_data(err)
    assert leader.state is State.CLOSED


def test_a_follower_without_the_secret_cannot_fake_a_proof() -> None:
    leader, _ = _pair()
    hello = Hello(PROTOCOL_VERSION, "F", 0, b"x" * 32)
    leader.receive_data(encode_frame(encode(hello)))
    leader.data_to_send()
    with pytest.raises(AuthenticationError, match="proof"):
        leader.receive_data(encode_frame(encode(Proof(b"\x00" * 32))))
    reply = FrameDecoder().feed(leader.data_to_send())
    assert decode(reply[0]) == Error(int(ErrorCode.AUTHENTICATION), str(leader.error))
    with pytest.raises(AuthenticationError):
        leader.receive_data(b"")  # closed for good


def test_frames_over_the_handshake_cap_are_refused_until_the_peer_proved_the_secret() -> None:
    """Before the proof, a node takes only handshake-sized frames (an unauthenticated peer
    claiming a 64 MiB frame made the leader allocate it); afterwards, the configured cap."""
    leader, _ = _pair()
    with pytest.raises(FrameError, match="outside"):
        leader.receive_data(HEADER.pack(HANDSHAKE_MAX_FRAME + 1, 0))
    _, follower = _pair()
    follower.start()
    with pytest.raises(FrameError, match="outside"):
        follower.receive_data(HEADER.pack(HANDSHAKE_MAX_FRAME + 1, 0))
    leader, follower = _pair()
    _shake(leader, follower)
    big = FetchRequest(1, "F", b"", b"", 100, (FetchPartition(1, 0, 5, 0),) * (HANDSHAKE_MAX_FRAME // 10))
    follower.send(big)
    assert leader.receive_data(follower.data_to_send()) == [big]


def test_fetch_before_authentication_is_a_protocol_error() -> None:
    leader, _ = _pair()
    with pytest.raises(ProtocolError, match="FetchRequest in state await-hello"):
        leader.receive_data(encode_frame(encode(FetchRequest(1, "F", b"", b"", 1, ()))))
    assert decode(FrameDecoder().feed(leader.data_to_send())[0]).code == ErrorCode.PROTOCOL


def test_older_leader_is_fenced_on_both_sides() -> None:
    # the leader answers a newer follower's Hello (an unproven claim fences nothing); the
    # follower checks the leader's proof, sends its own and refuses; the leader, told by a
    # proven peer, refuses too: it is the fenced one
    leader, follower = _pair(leader_epoch=1, follower_epoch=4)
    follower.start()
    leader.receive_data(follower.data_to_send())
    assert leader.superseded_by is None
    with pytest.raises(FencedLeaderError, match="lower than this node's epoch 4"):
        follower.receive_data(leader.data_to_send())
    with pytest.raises(FencedLeaderError, match="newer"):
        leader.receive_data(follower.data_to_send())
    assert leader.superseded_by == 4
    # a leader that does not check is refused by the follower, after its proof checks out
    follower = FollowerConnection(node_id="F", epoch=4, secret=b"k", nonce=b"m" * 32)
    follower.start()
    hello = follower.data_to_send()
    hello_bytes = FrameDecoder().feed(hello)[0]
    unsigned = Challenge(PROTOCOL_VERSION, "L", 1, b"n" * 32, (), b"")
    ch = Challenge(PROTOCOL_VERSION, "L", 1, b"n" * 32, (), auth.leader_mac(b"k", hello_bytes, encode(unsigned)))
    with pytest.raises(FencedLeaderError, match="lower than this node's epoch 4"):
        follower.receive_data(encode_frame(encode(ch)))


def test_version_mismatch_is_refused() -> None:
    leader, _ = _pair()
    with pytest.raises(ProtocolError, match="version"):
        leader.receive_data(encode_frame(encode(Hello(PROTOCOL_VERSION + 1, "F", 0, b""))))


def test_transition_tables_are_the_only_way_through() -> None:
    """Every (state, message) pair not in a table is refused, on both sides."""
    kinds = [Hello(1, "", 0, b""), Challenge(1, "", 0, b"", (), b""), Proof(b""),
             FetchRequest(1, "", b"", b"", 0, ()), FetchResponse(1, 0, False, None, None, ()), Ack(1, ()),
             Heartbeat(0)]
    for table, cls in ((LEADER_TRANSITIONS, LeaderConnection), (FOLLOWER_TRANSITIONS, FollowerConnection)):
        for state in State:
            for msg in kinds:
                if state is State.CLOSED:
                    continue
                conn = cls(node_id="x", epoch=0, secret=None, nonce=b"n")  # type: ignore[call-arg]
                conn.state = state
                allowed = (state, "send", type(msg)) in table
                if allowed:
                    conn.send(msg)
                else:
                    with pytest.raises(ProtocolError):
                        conn.send(msg)


# == cores over real stores, through a faulty channel ====================================================
def split_frames(data: bytes) -> list[bytes]:
    out = []
    pos = 0
    while pos < len(data):
        length, _ = HEADER.unpack_from(data, pos)
        out.append(data[pos:pos + HEADER.size + length])
        pos += HEADER.size + length
    return out


class Link:
    """One follower's connection to the leader: two frame queues with faults."""

    def __init__(self, net: Net, follower: FollowerCore) -> None:
        self.net = net
        self.follower = follower
        self.session: Any = None
        self.to_leader: list[bytes] = []
        self.to_follower: list[bytes] = []
        self.resets = 0
        self.errors: list[str] = []

    def push(self, queue: list[bytes], data: bytes) -> None:
        rng, faults = self.net.rng, self.net.faults
        for frame in split_frames(data):
            if rng.random() < faults["loss"]:
                continue
            for _ in range(2 if rng.random() < faults["dup"] else 1):
                f = bytearray(frame)
                if rng.random() < faults["corrupt"]:
                    f[rng.randrange(len(f))] ^= rng.randrange(1, 256)
                if queue and rng.random() < faults["reorder"]:
                    queue.insert(rng.randrange(len(queue)), bytes(f))
                else:
                    queue.append(bytes(f))

    def reset(self, why: str) -> None:
        self.errors.append(why)
        self.resets += 1
        if self.session is not None:
            self.session.close()
        self.session = None
        self.follower.disconnect()
        self.to_leader.clear()
        self.to_follower.clear()

    def step(self) -> None:
        now = self.net.now
        if self.session is None:
            self.session = self.net.leader.session(now, "mem")
            self.push(self.to_leader, self.follower.connect(now))
            return
        for _ in range(self.net.rng.randint(1, 3)):
            if self.to_leader:
                out = self.session.receive(self.to_leader.pop(0), now)
                self.push(self.to_follower, out)
                if self.session.closed:
                    self.reset(f"leader: {self.session.error!r}")
                    return
            if self.to_follower:
                try:
                    out = self.follower.receive(self.to_follower.pop(0), now)
                except (AuthenticationError, FencedLeaderError):
                    raise
                except EmbedlogError as exc:
                    self.push(self.to_leader, self.follower.pending())
                    self.reset(f"follower: {exc!r}")
                    return
                self.push(self.to_leader, out)
        self.push(self.to_follower, self.session.poll(now))
        if self.session.closed:
            self.reset(f"leader: {self.session.error!r}")
            return
        self.push(self.to_leader, self.follower.poll(now))
        if self.follower.expired(now):
            self.reset("follower: session timeout")


class Net:
    """A leader core and follower cores on simulated time (10 ms a step)."""

    def __init__(self, leader: Log, followers: list[Log], *, seed: int, faults: dict[str, float] | None = None,
                 secret: bytes = b"secret", max_bytes: int = 200) -> None:
        self.rng = random.Random(seed)
        self.faults = faults or {"loss": 0.0, "dup": 0.0, "corrupt": 0.0, "reorder": 0.0}
        self.now = 1_000_000
        self.leader_log = leader
        self.leader = LeaderCore(leader._store, secret=secret, now_ms=self.now, replica_lag_time_max_ms=3000,
                                 max_wait_ms=50, heartbeat_ms=40, session_timeout_ms=500)
        self.links = [Link(self, FollowerCore(f._store, secret=secret, max_bytes=max_bytes, request_timeout_ms=200,
                                              session_timeout_ms=500, heartbeat_ms=40)) for f in followers]
        self.follower_logs = followers

    def step(self) -> None:
        self.now += 10
        self.leader.update(self.now)
        for link in self.links:
            link.step()

    def run_until(self, done: Callable[[], bool], max_steps: int = 20_000,
                  check: Callable[[], None] | None = None) -> int:
        for n in range(max_steps):
            self.step()
            if check is not None:
                check()
            if done():
                return n
        raise AssertionError(f"no convergence in {max_steps} steps; resets {[lk.resets for lk in self.links]}; "
                             f"last errors {[lk.errors[-3:] for lk in self.links]}")


def snapshot(log: Log) -> dict[str, Any]:
    """Every partition's state and batches, topics and offsets digests."""

    def fn(txn: lmdb.Transaction, dbs: Any) -> dict[str, Any]:
        parts = {}
        for tid, part, st_ in replica.all_partitions(txn, dbs):
            parts[(tid, part)] = (st_, harness.stored_batches(txn, dbs, tid, part))
        return {"parts": parts, "topics": replica.topics_digest(txn, dbs),
                "offsets": replica.offsets_digest(txn, dbs)}

    return store_read(log, fn)


def converged(leader: Log, follower: Log) -> bool:
    a, b = snapshot(leader), snapshot(follower)
    if a["topics"] != b["topics"] or a["offsets"] != b["offsets"] or a["parts"].keys() != b["parts"].keys():
        return False
    for tp, (sa, ba) in a["parts"].items():
        sb, bb = b["parts"][tp]
        if ba != bb or (sa.start_offset, sa.end_offset) != (sb.start_offset, sb.end_offset):
            return False
        if not sa.high_watermark == sb.high_watermark == sa.end_offset:
            return False
    return True


class Checker:
    """Invariants after every step: the follower shows whole leader transactions only,
    its visible records are the leader's, high watermarks never go down, and the
    leader's high watermark never passes what an in-sync follower holds."""

    def __init__(self, net: Net, txn_topics: set[str]) -> None:
        self.net = net
        self.txn_topics = txn_topics
        self.hw_seen: dict[Any, int] = {}
        self.checks = 0
        self.responses = [-1] * len(net.links)

    def __call__(self) -> None:
        changed = [lk.follower.responses for lk in self.net.links]
        if changed == self.responses:
            return
        self.responses = changed
        self.checks += 1
        leader = snapshot(self.net.leader_log)
        ids = {self.net.leader_log.describe_topic(t).topic_id for t in self.txn_topics}
        lseq: dict[int, set[Any]] = {}
        for tp, (_, batches) in leader["parts"].items():
            if tp[0] in ids:
                for b in batches:
                    lseq.setdefault(codec.read_info(b).commit_seq, set()).add(tp)
        in_sync = set(self.net.leader.in_sync_ids())
        for i, link in enumerate(self.net.links):
            snap = snapshot(self.net.follower_logs[i])
            fseq: dict[int, set[Any]] = {}
            for tp, (st_, batches) in snap["parts"].items():
                key = (i, tp)
                assert st_.high_watermark >= self.hw_seen.get(key, 0), "follower high watermark went down"
                self.hw_seen[key] = st_.high_watermark
                lst = leader["parts"].get(tp)
                if lst is not None:
                    assert st_.high_watermark <= lst[0].high_watermark
                    lbatches = {codec.read_info(b).base_offset: b for b in lst[1]}
                    for b in batches:
                        info = codec.read_info(b)
                        if info.base_offset < st_.high_watermark and info.base_offset in lbatches:
                            assert lbatches[info.base_offset] == b, "a visible record differs from the leader's"
                    if link.follower.node_id in in_sync:
                        assert st_.end_offset >= lst[0].high_watermark, "leader hw passed an in-sync follower"
                if tp[0] in ids:
                    for b in batches:
                        fseq.setdefault(codec.read_info(b).commit_seq, set()).add(tp)
            for seq, tps in fseq.items():
                assert tps == lseq.get(seq), f"transaction {seq} is partly applied: {tps} vs {lseq.get(seq)}"
        for tp, (st_, _) in leader["parts"].items():
            assert st_.high_watermark >= self.hw_seen.get(("L", tp), 0), "leader high watermark went down"
            self.hw_seen[("L", tp)] = st_.high_watermark


class Workload:
    """Random leader activity: records, transactions with offsets, topic churn, log
    start moves, committed offsets."""

    def __init__(self, log: Log, rng: random.Random) -> None:
        self.log = log
        self.rng = rng
        self.p = log.producer(linger_ms=10_000)
        for name, n in (("orders", 3), ("audit", 1), ("trim", 2)):
            log.create_topic(name, n)
        self.n = 0

    def act(self) -> None:
        rng, log = self.rng, self.log
        r = rng.random()
        self.n += 1
        if r < 0.35:
            for _ in range(rng.randint(1, 20)):
                self.p.send(rng.choice(["orders", "trim", "audit"]), b"v%d" % self.n * rng.randint(1, 30),
                            key=b"k%d" % rng.randint(0, 9))
            self.p.flush()
        elif r < 0.6:
            with log.transaction() as tx:
                for _ in range(rng.randint(1, 6)):
                    tx.send(rng.choice(["orders", "audit"]), b"t%d" % self.n, partition=0)
                    tx.send("orders", b"u%d" % self.n, partition=rng.randint(0, 2))
                end = log.describe_topic("orders").partitions[0].end_offset
                tx.commit_offsets("g", {TopicPartition("orders", 0): rng.randint(0, end)})
        elif r < 0.68:
            if "churn" in log.topics():
                log.delete_topic("churn")
            else:
                log.create_topic("churn", rng.randint(1, 3), {"retention.ms": rng.randint(1000, 10**8)})
                with log.producer() as p:
                    p.send("churn", b"c", partition=0)
        elif r < 0.74 and "churn" in log.topics():
            log.alter_topic_config("churn", {"retention.ms": rng.randint(1000, 10**8)})
        elif r < 0.8:
            d = log.describe_topic("trim").partitions[0]
            with contextlib.suppress(OffsetOutOfRangeError):  # past the high watermark (not replicated yet)
                log.delete_records("trim", 0, rng.randint(d.start_offset, d.end_offset))
        elif r < 0.9:
            log.commit_offsets(rng.choice(["g", "h"]), {TopicPartition("trim", 1): 0})


@contextlib.contextmanager
def _logs(tmp_path: Path, *names: str) -> Iterator[list[Log]]:
    """One log per name, in directories of their own (hypothesis reuses ``tmp_path``);
    closed in that order on exit."""
    n = next(_RUNS)
    logs = [embedlog.open(tmp_path / f"{name}{n}", durability="none", maintenance_interval_ms=None) for name in names]
    try:
        yield logs
    finally:
        for lg in logs:
            lg.close()


def _faulty_run(leader: Log, follower: Log, seed: int, faults: dict[str, float], rounds: int, max_steps: int
                ) -> tuple[Net, Checker]:
    """``rounds`` workload actions on the leader, each followed by 1 to ``max_steps`` steps
    of a faulty channel to the follower, every step checked."""
    net = Net(leader, [follower], seed=seed, faults=faults)
    work = Workload(leader, random.Random(seed))
    check = Checker(net, {"orders", "audit"})
    for _ in range(rounds):
        work.act()
        for _ in range(net.rng.randint(1, max_steps)):
            net.step()
            check()
    return net, check


@pytest.mark.parametrize(("seed", "faults"), [
    (1, {"loss": 0.0, "dup": 0.0, "corrupt": 0.0, "reorder": 0.0}),
    (2, {"loss": 0.05, "dup": 0.05, "corrupt": 0.03, "reorder": 0.05}),
    (3, {"loss": 0.1, "dup": 0.1, "corrupt": 0.05, "reorder": 0.1}),
])
def test_follower_converges_through_a_faulty_channel(tmp_path: Path, seed: int, faults: dict[str, float]) -> None:
    with _logs(tmp_path, "leader", "follower") as (leader, follower):
        net, check = _faulty_run(leader, follower, seed, faults, rounds=60, max_steps=20)
        fid = net.links[0].follower.node_id
        # converged, and the acknowledgement of the last response arrived (it follows the
        # next fetch, which goes out before the response is applied)
        net.run_until(lambda: converged(leader, follower) and fid in net.leader.in_sync_ids(), check=check)
        assert check.checks > 10
        assert net.links[0].follower.pipelined > 0  # fetches went out before their predecessor was applied
        assert follower.topics() == leader.topics()
        for name in leader.topics():
            assert follower.describe_topic(name) == leader.describe_topic(name)
        assert net.leader.in_sync_ids() == (net.links[0].follower.node_id,)
        assert store_read(leader, replica.in_sync_size) == 2
        if any(faults.values()):
            assert net.links[0].resets > 0  # the faults did bite
        # consumers on the follower read what consumers on the leader read, offsets included
        for name in ("orders", "audit", "trim"):
            assert _consume(follower, name) == _consume(leader, name)
        c = follower.consumer(group="g")
        assert c.committed([TopicPartition("orders", 0)]) == leader.consumer(group="g").committed(
            [TopicPartition("orders", 0)])
        with pytest.raises(NotLeaderError), follower.producer() as p:
            p.send("orders", b"no")


def _consume(log: Log, name: str) -> list[tuple[Any, ...]]:
    return harness.consume_all(log, name, poll_timeout=0.05)


def test_two_followers_and_the_in_sync_set(tmp_path: Path) -> None:
    with _logs(tmp_path, "leader", "f1", "f2") as (leader, f1, f2):
        net = Net(leader, [f1, f2], seed=7)
        work = Workload(leader, random.Random(7))
        for _ in range(20):
            work.act()
            net.step()
        net.run_until(lambda: converged(leader, f1) and converged(leader, f2))
        ids = {lk.follower.node_id for lk in net.links}
        assert set(net.leader.in_sync_ids()) == ids
        assert store_read(leader, replica.get_isr)["size"] == 3
        # f2 goes silent: the high watermark stops at what f2 has until it leaves the in-sync set
        silent = net.links.pop()
        silent.reset("cut")
        with leader.producer() as p:
            p.send("orders", b"after", partition=0)
        tid = leader.describe_topic("orders").topic_id
        end = leader.describe_topic("orders").partitions[0].end_offset
        for _ in range(100):  # 1 s < replica_lag_time_max_ms
            net.step()
        assert store_read(leader, lambda txn, dbs: plog.load_state(txn, dbs, tid, 0)).high_watermark == end - 1
        net.run_until(lambda: net.leader.in_sync_ids() == (net.links[0].follower.node_id,), max_steps=400)
        net.run_until(lambda: converged(leader, f1), max_steps=400)
        assert store_read(leader, replica.get_isr)["size"] == 2
        st_ = net.leader.status()
        assert st_["followers"][silent.follower.node_id]["in_sync"] is False
        assert st_["followers"][silent.follower.node_id]["total_lag"] >= 1
        # it comes back, catches up and rejoins
        net.links.append(silent)
        net.run_until(lambda: len(net.leader.in_sync_ids()) == 2 and converged(leader, f2), max_steps=2000)


def test_wrong_secret_changes_nothing_on_the_leader(tmp_path: Path) -> None:
    with _logs(tmp_path, "leader", "follower") as (leader, follower):
        leader.create_topic("t")
        with leader.producer() as p:
            p.send("t", b"x")
        core = LeaderCore(leader._store, secret=b"right", now_ms=0)
        before = _dump_env(leader)
        fcore = FollowerCore(follower._store, secret=b"wrong")
        session = core.session(0)
        reply = session.receive(fcore.connect(0), 0)
        with pytest.raises(AuthenticationError):
            fcore.receive(reply, 0)
        session.receive(fcore.pending(), 0)
        assert session.closed
        assert isinstance(session.error, AuthenticationError)
        assert _dump_env(leader) == before
        assert core.followers == {}
        assert follower.topics() == []


def test_next_fetch_goes_out_before_the_apply_and_counts_for_nothing(tmp_path: Path) -> None:
    """A response of batches only is answered with the next fetch (from where it ends)
    before it is applied; what the leader counts as durable on the follower moves with
    the Ack that follows once it is, never with that fetch."""
    with _logs(tmp_path, "leader", "follower") as (leader, follower):
        leader.create_topic("t")
        harness.send_each_flushed(leader, "t", [b"v%d" % i * 20 for i in range(30)])
        core = LeaderCore(leader._store, secret=b"secret", now_ms=0)
        fcore = FollowerCore(follower._store, secret=b"secret", max_bytes=300)
        session = core.session(0)
        out = fcore.receive(session.receive(fcore.connect(0), 0), 0)  # proof, first fetch
        out = fcore.receive(session.receive(out, 0), 0)  # metadata and batches: applied, then the fetch
        assert [type(m) for m in harness.frames(out)] == [Ack, FetchRequest]
        assert fcore.pipelined == 0
        response = session.receive(out, 0)
        (resp,) = harness.frames(response)
        end = codec.read_info(resp.partitions[0].batches[-1]).next_offset
        had = follower.describe_topic("t").partitions[0].end_offset
        assert had < end < 30
        early: list[bytes] = []

        def flush(data: bytes) -> None:  # the socket layer's send, before the apply
            assert follower.describe_topic("t").partitions[0].end_offset == had
            early.append(data)

        rest = fcore.receive(response, 0, flush)
        assert fcore.pipelined == 1
        (fetch,) = harness.frames(early[0])
        assert isinstance(fetch, FetchRequest)
        assert fetch.partitions[0].fetch_offset == end
        assert follower.describe_topic("t").partitions[0].end_offset == end
        (ack,) = harness.frames(rest)
        assert isinstance(ack, Ack)
        assert ack.correlation_id == resp.correlation_id
        tp = (fetch.partitions[0].topic_id, 0)
        # what the follower holds durably (high watermarks are the least of it over the
        # in-sync set) moves with the Ack, not with the early fetch
        session.receive(early[0], 0)
        assert core.followers[fcore.node_id].durable.get(tp, 0) == had
        session.receive(rest, 0)
        assert core.followers[fcore.node_id].durable[tp] == end


def _dump_env(log: Log) -> dict[str, list[tuple[bytes, bytes]]]:
    def fn(txn: lmdb.Transaction, dbs: Any) -> dict[str, list[tuple[bytes, bytes]]]:
        out = {}
        for name, db in dbs.items():
            with txn.cursor(db=db) as cur:
                out[name] = [(bytes(k), bytes(v)) for k, v in cur]
        return out

    return store_read(log, fn)


def test_divergence_old_leader_rejoins_and_truncates(tmp_path: Path) -> None:
    """A writes; B copies part of it; A writes more that never reaches B and stops; B is
    promoted and writes at the same offsets; A follows B: A ends identical to B."""
    with _logs(tmp_path, "a", "b") as (a, b):
        a.create_topic("t", 2)
        net = Net(a, [b], seed=11)
        with a.producer() as p:
            for i in range(10):
                p.send("t", b"a%d" % i, partition=i % 2)
                p.flush()
        net.run_until(lambda: converged(a, b))
        net.links[0].reset("A dies")
        with a.transaction() as tx:  # acknowledged by nobody but A
            tx.send("t", b"lost0", partition=0)
            tx.send("t", b"lost1", partition=1)
        with a.producer() as p:
            p.send("t", b"lost2", partition=0)
        net.leader.stop()
        assert store_read(b, replica.get_role) == "replica"
        b_epoch = b._store.write(lambda txn: replica.promote(txn, b._store.dbs))
        assert b_epoch == 1
        harness.send_each_flushed(b, "t", [b"b%d" % i for i in range(3)], partition=0)
        # A comes back as a follower of B
        net2 = Net(b, [a], seed=12)
        net2.run_until(lambda: converged(b, a))
        assert [m[3] for m in _consume(a, "t")] == [m[3] for m in _consume(b, "t")]
        assert b"lost0" not in [m[3] for m in _consume(a, "t")]
        tid = b.describe_topic("t").topic_id
        assert store_read(a, lambda txn, dbs: replica.epoch_history(txn, dbs, tid, 0)) == [(0, 0), (1, 5)]
        assert {(t, p) for t, p, _ in net2.links[0].follower.truncated} == {(tid, 0), (tid, 1)}
        assert store_read(a, replica.get_epoch) == 1
        # A cannot lead now; B's epoch fences it if it tried
        with pytest.raises(NotLeaderError):
            LeaderCore(a._store, secret=b"secret", now_ms=0)


def test_a_fenced_leader_is_refused(tmp_path: Path) -> None:
    with _logs(tmp_path, "a", "b") as (a, b):
        a.create_topic("t")
        net = Net(a, [b], seed=13)
        net.run_until(lambda: converged(a, b))
        net.leader.stop()
        b._store.write(lambda txn: replica.promote(txn, b._store.dbs))
        b._store.write(lambda txn: replica.set_role(txn, b._store.dbs, "replica"))  # (as if it followed someone)
        core = LeaderCore(a._store, secret=b"secret", now_ms=0)  # the old leader, still at epoch 0
        fcore = FollowerCore(b._store, secret=b"secret")
        session = core.session(0)
        challenge = session.receive(fcore.connect(0), 0)
        assert not session.closed  # (the handshake finishes first: an unproven peer fences nothing)
        with pytest.raises(FencedLeaderError, match="lower than this node's epoch 1"):
            fcore.receive(challenge, 0)
        session.receive(fcore.pending(), 0)  # the follower's proof, then its refusal
        assert session.closed
        assert isinstance(session.error, FencedLeaderError)
        assert core.status()["fenced_by"]


def test_same_epoch_promoted_twice_is_resolved_by_epoch_owners(tmp_path: Path) -> None:
    """B and C both promoted to epoch 1 from the same state and both wrote; C then
    follows B: C's epoch-1 records (B never had them) are dropped, not kept."""
    with _logs(tmp_path, "a", "b", "c") as (a, b, c):
        a.create_topic("t")
        with a.producer() as p:
            p.send("t", b"base")
        net = Net(a, [b, c], seed=17)
        net.run_until(lambda: converged(a, b) and converged(a, c))
        net.leader.stop()
        for lg, tag in ((b, b"B"), (c, b"C")):
            assert lg._store.write(lambda txn, lg=lg: replica.promote(txn, lg._store.dbs)) == 1
            with lg.producer() as p:
                p.send("t", tag)
        assert [m[3] for m in _consume(c, "t")] == [b"base", b"C"]
        net2 = Net(b, [c], seed=18)
        net2.run_until(lambda: converged(b, c))
        assert [m[3] for m in _consume(c, "t")] == [b"base", b"B"]


def test_new_follower_starts_at_the_leaders_log_start(tmp_path: Path) -> None:
    with _logs(tmp_path, "leader", "follower") as (leader, follower):
        leader.create_topic("t")
        harness.send_each_flushed(leader, "t", [b"%d" % i for i in range(20)])
        leader.delete_records("t", 0, 12)
        net = Net(leader, [follower], seed=19)
        net.run_until(lambda: converged(leader, follower))
        d = follower.describe_topic("t").partitions[0]
        assert (d.start_offset, d.end_offset) == (12, 20)
        assert [m[1] for m in _consume(follower, "t")] == list(range(12, 20))


def test_standalone_records_are_kept_and_following_refused(tmp_path: Path) -> None:
    """Same topic name and id, same offsets and epoch 0 on both: only the epoch's leader
    tells the logs apart.  Following would have to delete the other log's records: it
    is refused (``UnrelatedLogError``, every time it reconnects) and nothing changes."""
    with _logs(tmp_path, "leader", "other") as (leader, other):
        for lg, tag in ((leader, b"L"), (other, b"O")):
            lg.create_topic("t")  # same name, same topic id 1 on both
            harness.send_each_flushed(lg, "t", [tag + b"%d" % i for i in range(3)])
        assert leader.describe_topic("t").topic_id == other.describe_topic("t").topic_id
        net = Net(leader, [other], seed=23)
        for _ in range(300):
            net.step()
        assert net.links[0].errors
        assert all("UnrelatedLogError" in e for e in net.links[0].errors)
        assert [m[3] for m in _consume(other, "t")] == [b"O0", b"O1", b"O2"]
        assert not net.leader.in_sync_ids()


def test_replicating_leader_hides_records_until_acknowledged(tmp_path: Path) -> None:
    with _logs(tmp_path, "leader", "follower") as (leader, follower):
        leader.create_topic("t")
        net = Net(leader, [follower], seed=29)
        net.run_until(lambda: converged(leader, follower))
        assert net.leader.in_sync_ids()
        with leader.producer() as p:
            p.send("t", b"x")
        assert _consume(leader, "t") == []  # not acknowledged by the in-sync follower yet
        net.run_until(lambda: converged(leader, follower))
        assert [m[3] for m in _consume(leader, "t")] == [b"x"]
        net.leader.stop()
        with leader.producer() as p:
            p.send("t", b"y")
        assert [m[3] for m in _consume(leader, "t")] == [b"x", b"y"]  # alone again: visible at once


def test_messages_out_of_range_fields_raise_value_error() -> None:
    with pytest.raises(ValueError):
        encode(Ack(-1, ()))
    with pytest.raises(ProtocolError):
        decode(b"")
    with pytest.raises(ProtocolError, match="unknown message type"):
        decode(b"\xff")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**31))
def test_lossy_runs_converge_for_any_seed(tmp_path: Path, seed: int) -> None:
    """A shorter randomized run per seed, so hypothesis explores fault orders."""
    with _logs(tmp_path, "leader", "follower") as (leader, follower):
        faults = {"loss": 0.08, "dup": 0.08, "corrupt": 0.05, "reorder": 0.08}
        net, check = _faulty_run(leader, follower, seed, faults, rounds=8, max_steps=10)
        net.run_until(lambda: converged(leader, follower), check=check)


def test_a_follower_on_a_slow_link_catches_up(tmp_path: Path) -> None:
    """Bytes trickle in (50 kB/s simulated): a response takes longer than the session
    timeout to arrive.  Bytes of a frame under way count as the leader being alive, and
    the fetch is not sent again while its response arrives; the follower converges.
    (Only whole frames counted: it reconnected every session timeout and never caught up,
    and asking again filled the link with duplicate responses.)"""
    with _logs(tmp_path, "leader", "follower") as (leader, follower):
        leader.create_topic("t")
        with leader.producer() as p:
            for _ in range(4):
                p.send("t", os.urandom(30_000))
                p.flush()
        now = 1_000_000
        core = LeaderCore(leader._store, secret=b"s", now_ms=now, max_wait_ms=50, heartbeat_ms=40,
                          session_timeout_ms=500)
        fcore = FollowerCore(follower._store, secret=b"s", max_bytes=100_000, request_timeout_ms=200,
                             session_timeout_ms=500, heartbeat_ms=40)
        session = core.session(now, "slow")
        to_leader = bytearray(fcore.connect(now))
        to_follower = bytearray()
        rate = 500  # bytes to the follower per 10 ms step
        for _ in range(20_000):
            now += 10
            core.update(now)
            if to_leader:
                to_follower += session.receive(bytes(to_leader), now)
                to_leader.clear()
            to_follower += session.poll(now)
            if to_follower:
                chunk = bytes(to_follower[:rate])
                del to_follower[:rate]
                to_leader += fcore.receive(chunk, now)
            to_leader += fcore.poll(now)
            assert not fcore.expired(now), "the follower gave up on a leader that was sending"
            assert not session.closed, session.error
            if converged(leader, follower):
                break
        assert converged(leader, follower)
        assert fcore.responses >= 1


def test_a_lost_fetch_is_asked_again_while_heartbeats_come(tmp_path: Path) -> None:
    """The leader never answers one fetch (lost on the way), and sends heartbeats while
    idle: heartbeats are no news of the response, so the follower asks again after
    ``request_timeout_ms`` and gets the next record (counting them as progress stalled
    replication for good)."""
    with _logs(tmp_path, "leader", "follower") as (leader, follower):
        leader.create_topic("t")
        now = 1_000_000
        core = LeaderCore(leader._store, secret=b"s", now_ms=now, max_wait_ms=50, heartbeat_ms=40,
                          session_timeout_ms=500)
        fcore = FollowerCore(follower._store, secret=b"s", request_timeout_ms=200, session_timeout_ms=500,
                             heartbeat_ms=40)
        session = core.session(now, "lossy")
        to_leader = fcore.connect(now)
        dropped = 0
        wrote = False
        for _ in range(2_000):
            now += 10
            core.update(now)
            frames = split_frames(to_leader)
            if wrote and not dropped:
                kept = [f for f in frames if not isinstance(decode(f[HEADER.size:]), FetchRequest)]
                dropped = len(frames) - len(kept)
                frames = kept
            to_follower = session.receive(b"".join(frames), now) + session.poll(now)
            to_leader = fcore.receive(to_follower, now) + fcore.poll(now)
            assert not fcore.expired(now)
            if not wrote and converged(leader, follower):
                with leader.producer() as p:
                    p.send("t", b"after the lost fetch")
                wrote = True
            elif dropped and converged(leader, follower):
                break
        assert dropped == 1
        assert converged(leader, follower)
