"""Two confluent-kafka consumers with group.protocol=consumer (KIP-848) share a topic's
partitions, read every record once between them, and the admin API describes their group
as Kafka 4 does. Then a classic member and a consumer-protocol member join one group at
the same time (the consumer-protocol one while the classic group is still forming): the
group becomes a consumer group, they share the partitions, and neither fails.

argv: bootstrap. Exits non-zero on the first failed check."""

import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = sys.argv[1]
DEADLINE_S = 60
TOPIC = "py-kip848"
GROUP = "py-kip848-group"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(TOPIC, num_partitions=4,
                                           replication_factor=1)]).values():
        f.result(DEADLINE_S)
    p = Producer({"bootstrap.servers": BOOTSTRAP})
    for i in range(400):
        p.produce(TOPIC, value=f"v{i}".encode(), partition=i % 4)
    check(p.flush(DEADLINE_S) == 0, "produced")

    def consumer(name):
        c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": GROUP,
                      "group.protocol": "consumer", "client.id": name,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([TOPIC])
        return c

    members = [consumer("py-a"), consumer("py-b")]
    seen = set()
    deadline = time.time() + DEADLINE_S
    while True:
        for c in members:
            m = c.poll(0.05)
            if m is not None and m.error() is None:
                seen.add(m.value())
                c.commit(message=m, asynchronous=False)
        owned = [{(tp.topic, tp.partition) for tp in c.assignment()} for c in members]
        if len(seen) == 400 and all(len(o) == 2 for o in owned) and not owned[0] & owned[1]:
            break
        check(time.time() < deadline,
              f"read {len(seen)} of 400; assignments {owned}")

    desc = None
    while True:
        desc = admin.describe_consumer_groups([GROUP])[GROUP].result(DEADLINE_S)
        if str(desc.state).endswith("STABLE"):
            break
        check(time.time() < deadline, f"group state {desc.state}")
        time.sleep(0.05)
    check(len(desc.members) == 2, f"members {desc.members}")
    check(str(getattr(desc, "type", "CONSUMER")).endswith("CONSUMER"), f"type {desc.type}")
    check(desc.partition_assignor == "uniform", f"assignor {desc.partition_assignor}")
    parts = sorted(tp.partition for mb in desc.members
                   for tp in mb.assignment.topic_partitions)
    check(parts == [0, 1, 2, 3], f"described assignment {parts}")

    committed = members[0].committed([TopicPartition(TOPIC, i) for i in range(4)],
                                     DEADLINE_S)
    check(sum(tp.offset for tp in committed) == 400, f"committed {committed}")
    for c in members:
        c.close()
    print("consumer protocol: ok")

    # A rolling upgrade's first step, at the worst moment: the classic member's first
    # JoinGroup is held (group.initial.rebalance.delay.ms) when the other one arrives.
    group = GROUP + "-mixed"
    def member(protocol, name):
        c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group,
                      "group.protocol": protocol, "client.id": name,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([TOPIC])
        return c

    old = member("classic", "py-old")
    old.poll(0.2)
    new = member("consumer", "py-new")
    members = [old, new]
    seen = set()
    deadline = time.time() + DEADLINE_S
    while True:
        for c in members:
            m = c.poll(0.05)
            if m is None:
                continue
            check(m.error() is None or not m.error().fatal(), f"fatal: {m.error()}")
            if m.error() is None:
                seen.add(m.value())
        owned = [{(tp.topic, tp.partition) for tp in c.assignment()} for c in members]
        if len(seen) == 400 and all(len(o) == 2 for o in owned) and not owned[0] & owned[1]:
            break
        check(time.time() < deadline,
              f"mixed: read {len(seen)} of 400; assignments {owned}")
    desc = admin.describe_consumer_groups([group])[group].result(DEADLINE_S)
    check(len(desc.members) == 2, f"mixed members {desc.members}")
    for c in members:
        c.close()
    print("mixed protocols: ok")


main()
