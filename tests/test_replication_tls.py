"""Replication over mutual TLS (client certificates), on real sockets on 127.0.0.1.

A throwaway CA signs the leader's and the follower's certificates (``procs/pki.py``);
a second CA signs a rogue follower's.  Leader and Follower run in this process on two
log directories.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

import embedlog
from embedlog.errors import AuthenticationError, ConfigError
from embedlog.replication import Follower, Leader
from procs import harness, pki, replcheck

SECRET = b"shared-secret-for-tls-tests"

pytestmark = pytest.mark.skipif(pki.available() is not None, reason=str(pki.available()))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> pki.PKI:
    return pki.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def leader_log(tmp_path: Path) -> Iterator[embedlog.Log]:
    with embedlog.open(tmp_path / "a", maintenance_interval_ms=None) as log:
        log.create_topic("t", 2, {"retention.ms": 3_600_000})
        with log.producer() as p:
            for i in range(10):
                p.send("t", b"before-%d" % i, key=b"k%d" % i, headers=[("h", b"%d" % i)])
        yield log


def _tls_connections(leader: Leader) -> list[bool]:
    server = leader._server
    assert server is not None
    with server._lock:
        return [isinstance(c.sock, ssl.SSLSocket) for c in server._conns.values()]


def _produce_all(log: embedlog.Log, n: int, tag: bytes) -> None:
    with log.producer(acks="all", delivery_timeout_ms=30_000) as p:
        for i in range(n):
            p.send("t", tag + b"-%d" % i, key=b"k%d" % i)
        p.flush()


def test_mutual_tls_replicates_with_client_certificates(tmp_path: Path, certs: pki.PKI,
                                                        leader_log: embedlog.Log) -> None:
    with leader_log.producer() as p:  # ~6 MB to catch up: many TLS records per frame
        for i in range(20_000):
            p.send("t", b"%06d" % i + bytes(300), key=b"k%d" % (i % 7))
    with Leader(leader_log, ssl_context=pki.server_context(certs)) as leader, \
            embedlog.open(tmp_path / "b", maintenance_interval_ms=None) as lb, \
            Follower(lb, leader.address, ssl_context=pki.client_context(certs)) as follower:
        follower.wait_connected(30)
        harness.wait_until(lambda: leader.status()["isr"] == [follower.core.node_id], "the follower in sync")
        assert _tls_connections(leader) == [True]
        _produce_all(leader_log, 50, b"tls")
        # flush returned: the follower holds the records (acks="all" under TLS)
        assert sum(p.end_offset for p in lb.describe_topic("t").partitions) == 20_060
        replcheck.wait_converged(leader_log, lb)
        assert follower.status()["connected"]


def test_follower_with_a_certificate_of_another_ca_is_refused(tmp_path: Path, certs: pki.PKI,
                                                              leader_log: embedlog.Log) -> None:
    with Leader(leader_log, ssl_context=pki.server_context(certs)) as leader:
        before = replcheck.raw(leader_log)
        with embedlog.open(tmp_path / "b", maintenance_interval_ms=None) as lb, \
                Follower(lb, leader.address, ssl_context=pki.client_context(certs, rogue=True)) as follower:
            with pytest.raises(AuthenticationError, match="refused this follower's TLS client certificate"):
                follower.wait_connected(30)
            assert isinstance(follower.error, AuthenticationError)  # fatal: it stopped retrying
            assert isinstance(follower.error.__cause__, ssl.SSLError)
            assert lb.topics() == []
        status = leader.status()
        assert (status["followers"], status["isr"]) == ({}, [])
        assert replcheck.raw(leader_log) == before  # the leader is unchanged
        _produce_all(leader_log, 5, b"alone")  # and still acknowledges alone (min.insync.replicas=1)


def test_follower_refuses_a_leader_it_does_not_trust(tmp_path: Path, certs: pki.PKI,
                                                     leader_log: embedlog.Log) -> None:
    with Leader(leader_log, ssl_context=pki.server_context(certs)) as leader:
        before = replcheck.raw(leader_log)
        with embedlog.open(tmp_path / "b", maintenance_interval_ms=None) as lb, \
                Follower(lb, leader.address, ssl_context=pki.client_context(certs, trust=certs.rogue_ca)) as follower:
            with pytest.raises(AuthenticationError, match="does not trust"):
                follower.wait_connected(30)
            assert lb.topics() == []
        assert leader.status()["followers"] == {}
        assert replcheck.raw(leader_log) == before


def test_secret_and_tls_together(tmp_path: Path, certs: pki.PKI, leader_log: embedlog.Log) -> None:
    with Leader(leader_log, secret=SECRET, ssl_context=pki.server_context(certs)) as leader:
        # the right certificate but the wrong secret: refused by the HMAC inside TLS
        before = replcheck.raw(leader_log)
        with embedlog.open(tmp_path / "c", maintenance_interval_ms=None) as lc, \
                Follower(lc, leader.address, secret=b"not-the-shared-secret",
                         ssl_context=pki.client_context(certs)) as wrong:
            with pytest.raises(AuthenticationError):
                wrong.wait_connected(30)
            assert lc.topics() == []
        assert leader.status()["followers"] == {}
        assert replcheck.raw(leader_log) == before
        with embedlog.open(tmp_path / "b", maintenance_interval_ms=None) as lb, \
                Follower(lb, leader.address, secret=SECRET, ssl_context=pki.client_context(certs)) as follower:
            follower.wait_connected(30)
            harness.wait_until(lambda: leader.status()["isr"] == [follower.core.node_id], "the follower in sync")
            assert _tls_connections(leader) == [True]
            _produce_all(leader_log, 20, b"both")
            assert sum(p.end_offset for p in lb.describe_topic("t").partitions) == 30
            replcheck.wait_converged(leader_log, lb)


def test_leader_refuses_a_tls_context_that_does_not_require_client_certificates(tmp_path: Path, certs: pki.PKI,
                                                                               leader_log: embedlog.Log) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # verify_mode is CERT_NONE: no client certificate asked
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    with pytest.raises(ConfigError, match="client certificates"):
        Leader(leader_log, ssl_context=ctx).close()


def test_follower_refuses_a_tls_context_that_does_not_verify_the_leader(tmp_path: Path) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with embedlog.open(tmp_path / "b", maintenance_interval_ms=None) as lb, \
            pytest.raises(ConfigError, match="verify"):
        Follower(lb, "127.0.0.1:9", ssl_context=ctx).close()
