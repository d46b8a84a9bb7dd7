"""Drives a krust node with two independent Python clients: kafka-python (pure Python)
and confluent-kafka (librdkafka). Exits non-zero on the first failed check."""

import sys
import time

BOOTSTRAP = sys.argv[1]
DEADLINE_S = 30


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def kafka_python():
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="kp-admin")
    admin.create_topics([NewTopic("kp", num_partitions=2, replication_factor=1,
                                  topic_configs={"retention.ms": "86400000"})])
    check("kp" in admin.list_topics(), "kp listed")
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp")])
    entries = {c[0]: c[1] for c in res[0].resources[0][4]}
    check(entries.get("retention.ms") == "86400000", f"retention.ms described: {entries.get('retention.ms')}")
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "kp", configs={"retention.ms": "1000000"})])
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp")])
    entries = {c[0]: c[1] for c in res[0].resources[0][4]}
    check(entries.get("retention.ms") == "1000000", "retention.ms altered")
    admin.create_partitions({"kp": NewPartitions(total_count=3)})

    sent = []
    # acks=0 is covered through librdkafka: kafka-python 2.3 does not reliably write
    # fire-and-forget requests before the producer closes.
    for codec in [None, "gzip", "lz4", "zstd"]:
        for acks in [1, "all"]:
            p = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks=acks, compression_type=codec, linger_ms=5)
            futures = []
            for i in range(50):
                v = f"{codec}-{acks}-{i}".encode()
                futures.append(p.send("kp", key=b"k", value=v, partition=i % 3))
                sent.append(v)
            p.flush()
            for f in futures:
                md = f.get(timeout=10)
                check(md.offset >= 0, "offset assigned")
            p.close()

    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, consumer_timeout_ms=1000)
    tps = [TopicPartition("kp", p) for p in range(3)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got = []
    deadline = time.time() + DEADLINE_S
    while len(got) < len(sent) and time.time() < deadline:
        for tp, msgs in c.poll(timeout_ms=500).items():
            got.extend(m.value for m in msgs)
    check(sorted(got) == sorted(sent), f"kafka-python consumed {len(got)} of {len(sent)}")
    ends = c.end_offsets(tps)
    check(sum(ends.values()) == len(sent), f"end offsets {ends}")
    begins = c.beginning_offsets(tps)
    check(all(v == 0 for v in begins.values()), f"beginning offsets {begins}")
    times = c.offsets_for_times({tps[0]: 0})
    check(times[tps[0]] is not None and times[tps[0]].offset == 0, f"offsets_for_times {times}")
    c.close()

    admin.delete_topics(["kp"])
    deadline = time.time() + DEADLINE_S
    while "kp" in admin.list_topics() and time.time() < deadline:
        time.sleep(0.05)
    check("kp" not in admin.list_topics(), "kp deleted")
    admin.close()
    print("kafka-python: ok")


def confluent():
    from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic("ck", num_partitions=1, replication_factor=1)]).values():
        f.result(10)
    errors = []
    p = Producer({"bootstrap.servers": BOOTSTRAP, "compression.type": "snappy", "acks": "all",
                  "enable.idempotence": False})
    for i in range(1000):
        p.produce("ck", value=f"c{i}".encode(), partition=0,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
    check(p.flush(30) == 0, "all delivered")
    check(not errors, f"delivery errors {errors[:3]}")
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition("ck", 0, OFFSET_BEGINNING)])
    got = []
    deadline = time.time() + DEADLINE_S
    while len(got) < 1000 and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append((m.offset(), m.value()))
    check([v for _, v in got] == [f"c{i}".encode() for i in range(1000)], f"confluent consumed {len(got)}")
    check([o for o, _ in got] == list(range(1000)), "offsets in order")
    lo, hi = c.get_watermark_offsets(TopicPartition("ck", 0), timeout=10)
    check((lo, hi) == (0, 1000), f"watermarks {(lo, hi)}")
    c.close()
    print("confluent-kafka: ok")


def aiokafka_client():
    """A third protocol implementation: an idempotent producer (InitProducerId, sequence
    numbers) and a consumer group member (join, sync, commit) in asyncio."""
    import asyncio
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        await admin.start()
        await admin.create_topics([NewTopic("aio", num_partitions=3, replication_factor=1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all",
                                    compression_type="gzip")
        await producer.start()
        try:
            for i in range(300):
                await producer.send("aio", value=f"a{i}".encode(), partition=i % 3)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer("aio", bootstrap_servers=BOOTSTRAP, group_id="aio-group",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        got = []
        try:
            deadline = time.time() + DEADLINE_S
            while len(got) < 300 and time.time() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for msgs in batch.values():
                    got.extend(m.value for m in msgs)
            await consumer.commit()
            committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
        finally:
            await consumer.stop()
        check(sorted(got) == sorted(f"a{i}".encode() for i in range(300)), f"aiokafka consumed {len(got)}")
        check(committed == {0: 100, 1: 100, 2: 100}, f"aiokafka committed {committed}")

    asyncio.run(run())
    print("aiokafka: ok")


def large_fetches():
    """Record sets large enough to be sent from the segment files by sendfile, read back by
    all three clients: kafka-python and aiokafka with non-flexible Fetch versions,
    confluent-kafka with flexible ones. Every value must come back intact and in order."""
    import asyncio
    import hashlib
    from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as ATopicPartition

    parts, per_part = 3, 1000

    def value(p, i):
        seed = hashlib.sha256(f"{p}-{i}".encode()).digest()
        return seed * 32  # 1 KiB

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic("big", num_partitions=parts, replication_factor=1)]).values():
        f.result(10)
    errors = []
    p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "linger.ms": 5,
                  "batch.size": 65536})
    for i in range(per_part):
        for part in range(parts):
            p.produce("big", value=value(part, i), partition=part,
                      on_delivery=lambda err, msg: errors.append(err) if err else None)
    check(p.flush(30) == 0, "all delivered")
    check(not errors, f"delivery errors {errors[:3]}")
    want = {part: [value(part, i) for i in range(per_part)] for part in range(parts)}

    def verify(name, got):
        for part in range(parts):
            check(got.get(part) == want[part],
                  f"{name}: partition {part} read {len(got.get(part, []))} of {per_part} intact")

    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition("big", part, OFFSET_BEGINNING) for part in range(parts)])
    got = {}
    deadline = time.time() + DEADLINE_S
    while sum(map(len, got.values())) < parts * per_part and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.setdefault(m.partition(), []).append(m.value())
    c.close()
    verify("confluent-kafka", got)

    k = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    tps = [KTopicPartition("big", part) for part in range(parts)]
    k.assign(tps)
    k.seek_to_beginning(*tps)
    got = {}
    deadline = time.time() + DEADLINE_S
    while sum(map(len, got.values())) < parts * per_part and time.time() < deadline:
        for tp, msgs in k.poll(timeout_ms=500).items():
            got.setdefault(tp.partition, []).extend(m.value for m in msgs)
    k.close()
    verify("kafka-python", got)

    async def aio():
        a = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
        await a.start()
        got = {}
        try:
            tps = [ATopicPartition("big", part) for part in range(parts)]
            a.assign(tps)
            await a.seek_to_beginning(*tps)
            deadline = time.time() + DEADLINE_S
            while sum(map(len, got.values())) < parts * per_part and time.time() < deadline:
                batch = await a.getmany(timeout_ms=500)
                for tp, msgs in batch.items():
                    got.setdefault(tp.partition, []).extend(m.value for m in msgs)
        finally:
            await a.stop()
        return got

    verify("aiokafka", asyncio.run(aio()))
    print("large fetches: ok")


def compacted():
    """A compacted topic as the Python clients read it after the cleaner ran: one record
    per key at its last offset, gaps between offsets, and the empty batch an idempotent
    producer's last batch leaves when all its records were superseded."""
    import asyncio
    import random
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka import KafkaConsumer, TopicPartition as KTopicPartition
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as ATopicPartition

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    configs = {"cleanup.policy": "compact", "segment.bytes": "1048576",
               "min.cleanable.dirty.ratio": "0.01"}
    for f in admin.create_topics([NewTopic("cmp", num_partitions=1, replication_factor=1,
                                           config=configs)]).values():
        f.result(10)
    rng = random.Random(7)
    last = {}
    offset = 0

    def produce(records):
        nonlocal offset
        errors = []
        p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True,
                      "compression.type": "gzip", "linger.ms": 5})
        for k, v in records:
            p.produce("cmp", key=k, value=v, partition=0,
                      on_delivery=lambda err, msg: errors.append(err) if err else None)
            last[k] = (offset, v)
            offset += 1
        check(p.flush(30) == 0, "all delivered")
        check(not errors, f"delivery errors {errors[:3]}")

    # One producer writes key "early" alone, then another overwrites it among 20 keys and
    # pushes them out of the active segment with keys of their own.
    produce([(b"early", b"first")] * 10)
    noise = lambda: bytes(rng.getrandbits(8) for _ in range(200))
    produce([(f"k{i % 20}".encode() if i != 500 else b"early", noise()) for i in range(8000)]
            + [(f"f{i}".encode(), noise()) for i in range(6000)])
    want = {k: v for k, v in last.items() if not k.startswith(b"f")}

    def keyed(records):
        return {k: (o, v) for o, k, v in records if not k.startswith(b"f")}

    def read_kafka_python():
        k = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
        tp = KTopicPartition("cmp", 0)
        k.assign([tp])
        k.seek_to_beginning(tp)
        end = k.end_offsets([tp])[tp]
        got = []
        deadline = time.time() + DEADLINE_S
        while (not got or got[-1][0] + 1 < end) and time.time() < deadline:
            for msgs in k.poll(timeout_ms=500).values():
                got.extend((m.offset, m.key, m.value) for m in msgs)
        k.close()
        return got

    deadline = time.time() + 60
    got = read_kafka_python()
    while len(keyed(got)) != len([o for o, k, v in got if not k.startswith(b"f")]) and time.time() < deadline:
        time.sleep(0.2)
        got = read_kafka_python()
    check(keyed(got) == want, f"kafka-python read {len(got)} records, not one per key")
    check(all(a[0] < b[0] for a, b in zip(got, got[1:])), "offsets grow")
    check(got[0][0] > 0, "the first records were compacted away")

    async def aio():
        a = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
        await a.start()
        out = []
        try:
            tp = ATopicPartition("cmp", 0)
            a.assign([tp])
            await a.seek_to_beginning(tp)
            end = (await a.end_offsets([tp]))[tp]
            deadline = time.time() + DEADLINE_S
            while (not out or out[-1][0] + 1 < end) and time.time() < deadline:
                for msgs in (await a.getmany(timeout_ms=500)).values():
                    out.extend((m.offset, m.key, m.value) for m in msgs)
        finally:
            await a.stop()
        return out

    check(asyncio.run(aio()) == got, "aiokafka reads what kafka-python read")
    print("compacted: ok")

def transactional():
    """Transactions from two more implementations: kafka-python's and aiokafka's
    transactional producers commit and abort (aiokafka also commits a group's offsets
    within its transaction), and both read the topic read_committed: the committed records
    once each, never the aborted ones."""
    import asyncio
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as ATopicPartition

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="kp-txn-admin")
    admin.create_topics([NewTopic("ptx", num_partitions=2, replication_factor=1)])
    admin.close()

    kp = KafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id="kp-txn")
    kp.init_transactions()
    kp.begin_transaction()
    for i in range(6):
        kp.send("ptx", value=f"kp-c{i}".encode(), partition=i % 2)
    kp.commit_transaction()
    kp.begin_transaction()
    for i in range(4):
        kp.send("ptx", value=f"kp-a{i}".encode(), partition=i % 2)
    kp.flush()
    kp.abort_transaction()
    kp.close()

    async def aio_produce():
        p = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id="aio-txn")
        await p.start()
        try:
            async with p.transaction():
                for i in range(6):
                    await p.send("ptx", value=f"aio-c{i}".encode(), partition=i % 2)
                await p.send_offsets_to_transaction({ATopicPartition("ptx", 0): 3}, "ptx-group")
            await p.begin_transaction()
            for i in range(4):
                await p.send("ptx", value=f"aio-a{i}".encode(), partition=i % 2)
            await p.abort_transaction()
        finally:
            await p.stop()

    asyncio.run(aio_produce())
    want = sorted([f"kp-c{i}".encode() for i in range(6)] + [f"aio-c{i}".encode() for i in range(6)])

    def read_kafka_python(isolation, n):
        c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                          isolation_level=isolation)
        tps = [TopicPartition("ptx", p) for p in (0, 1)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = []
        deadline = time.time() + DEADLINE_S
        while len(got) < n and time.time() < deadline:
            for msgs in c.poll(timeout_ms=300).values():
                got.extend(m.value for m in msgs)
        # Nothing more arrives.
        for msgs in c.poll(timeout_ms=700).values():
            got.extend(m.value for m in msgs)
        c.close()
        return sorted(got)

    check(read_kafka_python("read_committed", 12) == want, "kafka-python read_committed")
    check(len(read_kafka_python("read_uncommitted", 20)) == 20, "kafka-python read_uncommitted")

    async def aio_read():
        c = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                             isolation_level="read_committed")
        await c.start()
        got = []
        try:
            tps = [ATopicPartition("ptx", p) for p in (0, 1)]
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            deadline = time.time() + DEADLINE_S
            while len(got) < 12 and time.time() < deadline:
                for msgs in (await c.getmany(timeout_ms=300)).values():
                    got.extend(m.value for m in msgs)
            for msgs in (await c.getmany(timeout_ms=700)).values():
                got.extend(m.value for m in msgs)
        finally:
            await c.stop()
        return sorted(got)

    check(asyncio.run(aio_read()) == want, "aiokafka read_committed")
    g = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id="ptx-group", enable_auto_commit=False)
    committed = g.committed(TopicPartition("ptx", 0))
    g.close()
    check(committed == 3, f"offsets committed in the transaction: {committed}")
    print("transactions: ok")


if __name__ == "__main__":
    kafka_python()
    confluent()
    aiokafka_client()
    large_fetches()
    compacted()
    transactional()
