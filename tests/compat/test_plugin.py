"""embedlog's pytest plugin, exercised by running inner test sessions with pytester.

The inner sessions load the plugin the way users get it: through the ``pytest11``
entry point of the installed package, with no flag or conftest.  Application modules
in them import the real client libraries at import time, before any fixture runs.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import warnings

import pytest

pytest_plugins = ["pytester"]

# Import the client libraries here, in the outer session, as an application's test suite
# would have: pytester drops modules first imported by an inner run, and a library
# imported afresh has new classes (the plugin copes, but these tests are about apps).
for _name in ("kafka", "aiokafka", "aiokafka.admin", "confluent_kafka", "confluent_kafka.admin",
              "embedlog.compat.registry", "embedlog.compat.aiokafka.admin",
              "embedlog.compat.kafka_python", "embedlog.compat.aiokafka", "embedlog.compat.confluent_kafka",
              "embedlog.compat.confluent_kafka.admin"):
    with contextlib.suppress(ImportError), warnings.catch_warnings():  # the libraries' deprecation noise
        warnings.simplefilter("ignore", DeprecationWarning)
        importlib.import_module(_name)

HAS_XDIST = importlib.util.find_spec("xdist") is not None
HAS_CONFLUENT_SHIM = (importlib.util.find_spec("confluent_kafka") is not None
                      and importlib.util.find_spec("embedlog.compat.confluent_kafka") is not None)

KAFKA_APP = '''
from kafka import KafkaConsumer, KafkaProducer

def publish(values, servers="kafka-prod:9092"):
    producer = KafkaProducer(bootstrap_servers=servers)
    for v in values:
        producer.send("orders", v)
    producer.flush()
    producer.close()

def read_all(servers="kafka-prod:9092"):
    consumer = KafkaConsumer("orders", bootstrap_servers=servers, auto_offset_reset="earliest",
                             consumer_timeout_ms=500)
    try:
        return [m.value for m in consumer]
    finally:
        consumer.close()
'''


def test_requesting_the_fixture_is_enough(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(kafka_app_a=KAFKA_APP)
    pytester.makepyfile(test_inner='''
        import kafka
        import kafka_app_a  # imported before any fixture: its names are the real classes
        import embedlog
        from embedlog.compat import kafka_python as shim

        def test_app_reaches_the_embedded_log(embedlog_kafka):
            assert isinstance(embedlog_kafka, embedlog.Log)
            kafka_app_a.publish([b"a", b"b"])
            assert kafka_app_a.read_all() == [b"a", b"b"]
            assert embedlog_kafka.describe_topic("orders").records == 2
            assert issubclass(kafka_app_a.KafkaProducer, shim.KafkaProducer)
            assert issubclass(kafka.KafkaProducer, shim.KafkaProducer)

        def test_other_servers_meet_in_the_same_log(embedlog_kafka):
            kafka_app_a.publish([b"x"], servers="somewhere-else:1")
            assert kafka_app_a.read_all(servers="a-third:2") == [b"x"]
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=2)


def test_a_fixture_listed_before_embedlog_kafka_gets_a_stand_in_too(pytester: pytest.Pytester) -> None:
    """``def test_x(producer, embedlog_kafka)``: the plugin's fixture runs first, so the
    application's fixture that makes a client gets a stand-in (it got the real class)."""
    pytester.makepyfile(test_inner='''
        import pytest
        from kafka import KafkaConsumer, KafkaProducer
        from embedlog.compat import kafka_python as shim

        @pytest.fixture
        def producer():
            p = KafkaProducer(bootstrap_servers="kafka-prod:9092")
            yield p
            p.close()

        def test_x(producer, embedlog_kafka):
            assert isinstance(producer, shim.KafkaProducer)
            producer.send("orders", b"v").get(5)
            assert embedlog_kafka.describe_topic("orders").records == 1
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=1)


def test_wider_scoped_fixtures_are_set_up_before_embedlog_kafka(pytester: pytest.Pytester) -> None:
    """pytest sets up session and module fixtures before function ones; the plugin put
    ``embedlog_kafka`` ahead of them all, so a session fixture first requested by a fixture
    test made its client while routing was on: bound to that test's log, closed after it,
    and every later test using it failed — or not, by test order."""
    pytester.makeconftest('''
        import pytest
        from embedlog.compat import kafka_python as shim

        ORDER = []

        @pytest.fixture(scope="session")
        def shared_producer():
            p = shim.KafkaProducer(bootstrap_servers="shared:9092")  # the shim used directly
            yield p
            p.close()

        @pytest.fixture(scope="module")
        def mod():
            from embedlog.compat import registry
            ORDER.append("module, routing on" if "*" in registry._CLUSTERS else "module")
    ''')
    pytester.makepyfile(test_inner='''
        import conftest

        def test_1_with_fixture(mod, shared_producer, embedlog_kafka):
            shared_producer.send("t", b"1").get(5)
            assert conftest.ORDER == ["module"]
            assert "t" not in embedlog_kafka.topics()  # (the session client keeps its own log)

        def test_2_without_fixture(shared_producer):
            shared_producer.send("t", b"2").get(5)
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=2)


def test_a_session_fixture_a_function_override_wraps_is_set_up_before_embedlog_kafka(
        pytester: pytest.Pytester) -> None:
    """A module refines a conftest's session fixture with a function-scoped one of the
    same name (``def producer(producer)``): pytest gives the name the override's scope,
    so the session fixture was made while routing was on, on the first test's log."""
    pytester.makeconftest('''
        import pytest
        from embedlog.compat import kafka_python as shim

        @pytest.fixture(scope="session")
        def producer():
            p = shim.KafkaProducer(bootstrap_servers="shared:9092")  # the shim used directly
            yield p
            p.close()
    ''')
    pytester.makepyfile(test_inner='''
        import pytest

        @pytest.fixture
        def producer(producer):
            return producer

        @pytest.fixture
        def other():
            return 1

        def test_one(other, producer, embedlog_kafka):  # (another function fixture listed first)
            producer.send("t", b"1").get(5)
            assert "t" not in embedlog_kafka.topics()

        def test_two(producer, embedlog_kafka):
            producer.send("t", b"2").get(5)
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=2)


def test_a_function_override_that_replaces_a_session_fixture_gets_a_stand_in(pytester: pytest.Pytester) -> None:
    """An override that does not request the session fixture it shadows replaces it: it
    is function-scoped, and goes after ``embedlog_kafka`` (the widest scope of every
    definition of the name put it first, with a real client)."""
    pytester.makeconftest('''
        import pytest

        @pytest.fixture(scope="session")
        def producer():  # the integration suite's, for a real cluster (never set up here)
            from kafka import KafkaProducer
            p = KafkaProducer(bootstrap_servers="kafka.internal:9092")
            yield p
            p.close()
    ''')
    pytester.makepyfile(test_inner='''
        import kafka
        import pytest

        @pytest.fixture
        def producer():  # a client of its own, not the session one
            p = kafka.KafkaProducer(bootstrap_servers="localhost:9092")
            yield p
            p.close()

        def test_x(producer, embedlog_kafka):
            assert type(producer).__module__.startswith("embedlog."), type(producer)
            producer.send("t", b"1").get(5)
            assert "t" in embedlog_kafka.topics()
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=1)


def test_values_the_shims_return_are_the_real_libraries_classes(pytester: pytest.Pytester) -> None:
    """``isinstance(record, kafka.consumer.fetcher.ConsumerRecord)`` holds under the fixture,
    as with the real client (and for aiokafka's ``aiokafka.structs`` classes)."""
    pytester.makepyfile(test_inner='''
        import asyncio
        import kafka.consumer.fetcher, kafka.producer.future, aiokafka.structs
        from kafka import KafkaProducer, KafkaConsumer
        from aiokafka import AIOKafkaProducer, AIOKafkaConsumer

        def test_kafka_python(embedlog_kafka):
            md = KafkaProducer(bootstrap_servers="x").send("t", b"v").get(5)
            r = next(KafkaConsumer("t", bootstrap_servers="x", auto_offset_reset="earliest",
                                   consumer_timeout_ms=2000))
            assert isinstance(md, kafka.producer.future.RecordMetadata), type(md)
            assert isinstance(r, kafka.consumer.fetcher.ConsumerRecord), type(r)
            assert (r.value, r.offset, md.offset) == (b"v", 0, 0)

        def test_aiokafka(embedlog_kafka):
            async def main():
                p = AIOKafkaProducer(bootstrap_servers="x")
                await p.start()
                md = await p.send_and_wait("t", b"v")
                await p.stop()
                c = AIOKafkaConsumer("t", bootstrap_servers="x", auto_offset_reset="earliest")
                await c.start()
                m = await c.getone()
                await c.stop()
                return md, m
            md, m = asyncio.run(main())
            assert isinstance(md, aiokafka.structs.RecordMetadata), type(md)
            assert isinstance(m, aiokafka.structs.ConsumerRecord), type(m)
            assert (m.value, m.offset, md.offset) == (b"v", 0, 0)
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=2)


def test_tests_without_the_fixture_get_the_real_clients(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(kafka_app_b=KAFKA_APP)
    pytester.makepyfile(test_inner='''
        import sys
        import kafka
        import kafka.producer.kafka
        import kafka_app_b
        from embedlog.compat import kafka_python as shim

        # in a dict: the fixture swaps module globals that are the real class, REAL included
        REAL = {"class": kafka.KafkaProducer}

        def test_before():
            assert kafka_app_b.KafkaProducer is REAL["class"]
            assert not issubclass(REAL["class"], shim.KafkaProducer)

        def test_during(embedlog_kafka):
            assert kafka_app_b.KafkaProducer is not REAL["class"]
            assert kafka.producer.kafka.KafkaProducer is kafka_app_b.KafkaProducer
            # a module imported during the test picks up the stand-in too...
            sys.modules.pop("late_app", None)
            import late_app
            assert late_app.KafkaProducer is kafka_app_b.KafkaProducer

        def test_after():
            # ...and is put back like the others
            import late_app
            real = REAL["class"]
            assert late_app.KafkaProducer is real
            assert kafka_app_b.KafkaProducer is real
            assert kafka.KafkaProducer is real
            assert kafka.producer.kafka.KafkaProducer is real
            # a module that chose the shim keeps it
            assert sys.modules["keeps_shim"].KafkaProducer is shim.KafkaProducer
    ''')
    pytester.makepyfile(late_app="from kafka import KafkaProducer\n")
    pytester.makepyfile(keeps_shim="from embedlog.compat.kafka_python import KafkaProducer\n")
    pytester.makeconftest("import keeps_shim\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=3)


def test_markers_of_module_class_and_test_combine(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner='''
        import pytest

        pytestmark = pytest.mark.embedlog_topics("base", auto_create_topics=False, num_partitions=2)

        @pytest.mark.embedlog_topics("orders")
        def test_function_marker_adds_to_the_module_s(embedlog_kafka):
            assert embedlog_kafka.topics() == ["base", "orders"]
            from embedlog.compat import registry
            assert registry.log_for({}).auto_create_topics is False

        @pytest.mark.embedlog_topics(("events", 3), num_partitions=4)
        class TestInClass:
            @pytest.mark.embedlog_topics("inner", auto_create_topics=True)
            def test_in_class(self, embedlog_kafka):
                assert embedlog_kafka.topics() == ["base", "events", "inner"]
                assert len(embedlog_kafka.describe_topic("events").partitions) == 3
                from embedlog.compat import registry
                cluster = registry.log_for({})
                assert (cluster.auto_create_topics, cluster.num_partitions) == (True, 4)
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=2)


def test_clients_made_without_the_fixture_keep_their_log_across_fixture_tests(pytester: pytest.Pytester) -> None:
    """A module-level shim producer (no fixture) and ``registry.configure``: a fixture test
    in between closed that producer's log and forgot the configured partition count."""
    pytester.makepyfile(test_inner='''
        from embedlog.compat import registry
        from embedlog.compat.confluent_kafka import Producer
        from embedlog.compat.confluent_kafka.admin import AdminClient

        registry.configure("mine:9092", num_partitions=3)
        producer = Producer({"bootstrap.servers": "mine:9092"})

        def test_before():
            producer.produce("t", b"1")
            assert producer.flush(10) == 0

        def test_with_the_fixture(embedlog_kafka):
            assert embedlog_kafka.topics() == []

        def test_after():
            producer.produce("t", b"2")
            assert producer.flush(10) == 0
            admin = AdminClient({"bootstrap.servers": "mine:9092"})
            assert len(admin.list_topics().topics["t"].partitions) == 3
            producer.produce("u", b"3")
            assert producer.flush(10) == 0
            assert len(admin.list_topics().topics["u"].partitions) == 3
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=3)


def test_marker_creates_topics(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner='''
        import pytest
        from kafka import KafkaProducer
        from kafka.errors import KafkaTimeoutError

        @pytest.mark.embedlog_topics("orders", ("events", 3), ("state", 1, {"cleanup.policy": "compact"}),
                                     num_partitions=2)
        def test_topics(embedlog_kafka):
            assert embedlog_kafka.topics() == ["events", "orders", "state"]
            assert len(embedlog_kafka.describe_topic("events").partitions) == 3
            assert len(embedlog_kafka.describe_topic("orders").partitions) == 2
            assert embedlog_kafka.describe_topic("state").config["cleanup.policy"] == "compact"
            KafkaProducer(bootstrap_servers="k:1").send("fresh", b"v").get(10)
            assert len(embedlog_kafka.describe_topic("fresh").partitions) == 2

        @pytest.mark.embedlog_topics("only", auto_create_topics=False)
        def test_no_auto_creation(embedlog_kafka):
            p = KafkaProducer(bootstrap_servers="k:1")
            p.send("only", b"v").get(10)
            with pytest.raises(KafkaTimeoutError):  # the real class catches the shim's error
                p.send("other", b"v")

        def test_fresh_log_each_test(embedlog_kafka):
            assert embedlog_kafka.topics() == []

        @pytest.mark.embedlog_topics(42)
        def test_bad_marker(embedlog_kafka):
            pass

        @pytest.mark.embedlog_topics(("orders", "three"))
        def test_bad_partitions(embedlog_kafka):
            pass

        @pytest.mark.embedlog_topics(("orders", 1, "compact"))
        def test_bad_config(embedlog_kafka):
            pass

        @pytest.mark.embedlog_topics(("orders", 0))  # (it meant the default count)
        def test_zero_partitions(embedlog_kafka):
            pass

        @pytest.mark.embedlog_topics(num_partitions=0)
        def test_zero_default_partitions(embedlog_kafka):
            pass

        @pytest.mark.embedlog_topics(auto_create_topics="no")
        def test_auto_create_not_a_bool(embedlog_kafka):
            pass
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", "--strict-markers")
    result.assert_outcomes(passed=3, errors=6)
    result.stdout.fnmatch_lines(["*embedlog_topics: num_partitions must be an int >= 1, got 0*"])
    result.stdout.fnmatch_lines(["*embedlog_topics: auto_create_topics must be True or False, got 'no'*"])
    result.stdout.fnmatch_lines(["*embedlog_topics*each topic is a name*('orders', 0)*"])
    result.stdout.fnmatch_lines(["*embedlog_topics*each topic is a name*42*"])
    result.stdout.fnmatch_lines(["*embedlog_topics*each topic is a name*'three'*"])
    result.stdout.fnmatch_lines(["*embedlog_topics*each topic is a name*'compact'*"])
    assert "ValueError" not in result.stdout.str()


def test_embedlog_log_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner='''
        import embedlog

        seen = []

        def test_one(embedlog_log, tmp_path):
            assert embedlog_log.path.startswith(str(tmp_path))
            embedlog_log.create_topic("t")
            seen.append(embedlog_log)

        def test_two(embedlog_log, embedlog_kafka):
            assert seen[0].closed  # closed after its test
            assert embedlog_kafka is embedlog_log
            assert embedlog_log.topics() == []
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_aiokafka_apps(pytester: pytest.Pytester) -> None:
    pytest.importorskip("aiokafka")
    pytester.makepyfile(aio_app='''
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        async def roundtrip():
            admin = AIOKafkaAdminClient(bootstrap_servers="kafka:9092")
            await admin.start()
            await admin.create_topics([NewTopic("jobs", 3, 1)])
            await admin.close()
            async with AIOKafkaProducer(bootstrap_servers="kafka:9092") as p:
                await p.send_and_wait("jobs", b"job-1")
            async with AIOKafkaConsumer("jobs", bootstrap_servers="kafka:9092", group_id="w",
                                        auto_offset_reset="earliest") as c:
                msg = await c.getone()
                await c.commit()
                return msg.value
    ''')
    pytester.makepyfile(test_inner='''
        import asyncio
        import aio_app

        def test_roundtrip(embedlog_kafka):
            assert asyncio.run(aio_app.roundtrip()) == b"job-1"
            assert embedlog_kafka.describe_group("w").total_lag == 0
            assert len(embedlog_kafka.describe_topic("jobs").partitions) == 3  # made by the admin client
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.skipif(not HAS_CONFLUENT_SHIM, reason="embedlog.compat.confluent_kafka is not there yet")
def test_confluent_kafka_apps(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ck_app='''
        from confluent_kafka import Consumer, Producer

        def roundtrip():
            p = Producer({"bootstrap.servers": "broker:9092"})
            p.produce("payments", b"paid", key=b"order-1")
            p.flush(10)
            c = Consumer({"bootstrap.servers": "broker:9092", "group.id": "g", "auto.offset.reset": "earliest"})
            c.subscribe(["payments"])
            try:
                for _ in range(100):
                    msg = c.poll(0.1)
                    if msg is not None and msg.error() is None:
                        return msg.value()
            finally:
                c.close()
    ''')
    pytester.makepyfile(test_inner='''
        import confluent_kafka
        import ck_app

        REAL = {"class": confluent_kafka.Producer}

        def test_roundtrip(embedlog_kafka):
            assert ck_app.Producer is not REAL["class"]
            assert ck_app.roundtrip() == b"paid"

        def test_after():
            assert ck_app.Producer is REAL["class"]
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


@pytest.mark.skipif(not HAS_XDIST, reason="pytest-xdist is not installed")
def test_works_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(kafka_app_x=KAFKA_APP)
    pytester.makepyfile(test_inner='''
        import pytest
        import kafka_app_x

        @pytest.mark.parametrize("n", range(6))
        def test_each_worker_has_its_own_log(embedlog_kafka, n):
            kafka_app_x.publish([b"%d" % n])
            assert kafka_app_x.read_all() == [b"%d" % n]
    ''')
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=6)


def test_only_imported_libraries_are_patched_and_a_late_import_is_hooked(pytester: pytest.Pytester) -> None:
    """In a fresh process: the fixture imports no client library the application did not,
    and a library first imported while a test runs is patched before its importer binds it
    (the import hook), then put back like the rest."""
    if importlib.util.find_spec("kafka") is None or importlib.util.find_spec("aiokafka") is None:
        pytest.skip("needs kafka-python and aiokafka")
    pytester.makepyfile(lazy_kafka_app=KAFKA_APP)
    pytester.makepyfile(lazy_aio_app="from aiokafka import AIOKafkaProducer\n")
    pytester.makepyfile(test_inner='''
        import sys

        import kafka_app_first  # kafka-python only, before any fixture

        LIBS = ("aiokafka", "confluent_kafka", "confluent_kafka.admin")

        def test_nothing_else_is_imported(embedlog_kafka):
            assert [m for m in LIBS if m in sys.modules] == []
            assert "embedlog.compat.aiokafka" not in sys.modules
            assert kafka_app_first.KafkaProducer.__module__ == "embedlog.compat.kafka_python.producer"

        def test_a_library_imported_during_the_test(embedlog_kafka):
            assert "aiokafka" not in sys.modules
            import lazy_aio_app  # imports aiokafka for the first time
            from aiokafka.producer.producer import AIOKafkaProducer as deep
            from embedlog.compat.aiokafka import AIOKafkaProducer as shim
            assert issubclass(lazy_aio_app.AIOKafkaProducer, shim)
            assert deep is lazy_aio_app.AIOKafkaProducer
            assert sys.modules["aiokafka"].__spec__.loader.__class__.__name__ != "_PatchingLoader"

        def test_after():
            import aiokafka
            import lazy_aio_app
            from aiokafka.producer.producer import AIOKafkaProducer as deep
            from embedlog.compat.aiokafka import AIOKafkaProducer as shim
            assert not issubclass(aiokafka.AIOKafkaProducer, shim)
            assert lazy_aio_app.AIOKafkaProducer is aiokafka.AIOKafkaProducer is deep
            assert not issubclass(kafka_app_first.KafkaProducer, shim)
            assert not any(type(f).__name__ == "_ImportHook" for f in sys.meta_path)

        def test_patched_again_from_the_second_test_on(embedlog_kafka):
            import aiokafka
            import lazy_aio_app
            from embedlog.compat.aiokafka import AIOKafkaProducer as shim
            assert issubclass(lazy_aio_app.AIOKafkaProducer, shim)
            assert issubclass(aiokafka.AIOKafkaProducer, shim)
    ''')
    pytester.makepyfile(kafka_app_first="from kafka import KafkaProducer\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly",
                                           "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=4)


@pytest.mark.skipif(not HAS_CONFLUENT_SHIM, reason="needs confluent-kafka")
def test_a_submodule_imported_first_patches_its_package_too(pytester: pytest.Pytester) -> None:
    """``from confluent_kafka.admin import AdminClient`` as the first import of the library,
    inside the test: both ``confluent_kafka.Producer`` and ``admin.AdminClient`` are the
    shim's (the shim's own import of ``confluent_kafka.admin`` is handled in one pass)."""
    pytester.makepyfile(test_inner='''
        import sys

        def test_first_import_is_a_submodule(embedlog_kafka):
            assert "confluent_kafka" not in sys.modules
            from confluent_kafka.admin import AdminClient, NewTopic
            import confluent_kafka
            from embedlog.compat import confluent_kafka as shim
            from embedlog.compat.confluent_kafka import admin as shim_admin
            assert issubclass(AdminClient, shim_admin.AdminClient)
            assert issubclass(confluent_kafka.Producer, shim.Producer)
            AdminClient({"bootstrap.servers": "x:1"}).create_topics([NewTopic("made", 2)])["made"].result(10)
            assert len(embedlog_kafka.describe_topic("made").partitions) == 2

        def test_after():
            import confluent_kafka
            from confluent_kafka.admin import AdminClient
            from embedlog.compat import confluent_kafka as shim
            from embedlog.compat.confluent_kafka import admin as shim_admin
            assert not issubclass(confluent_kafka.Producer, shim.Producer)
            assert not issubclass(AdminClient, shim_admin.AdminClient)
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
