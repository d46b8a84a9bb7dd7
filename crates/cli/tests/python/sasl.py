"""Authenticates to a krust SASL_PLAINTEXT listener with three independent Python clients.

argv: bootstrap, then the admin's PLAIN password. Creates SCRAM users with
confluent-kafka's admin API, then produces and consumes as them with kafka-python
(SCRAM-SHA-256), confluent-kafka (SCRAM-SHA-512) and aiokafka (PLAIN); a wrong password
is refused. Exits non-zero on the first failed check."""

import asyncio
import sys
import time

BOOTSTRAP = sys.argv[1]
ADMIN_PASSWORD = sys.argv[2]
DEADLINE_S = 30


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def confluent_admin():
    from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo,
                                       ScramMechanism, UserScramCredentialUpsertion)
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP, "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "PLAIN", "sasl.username": "admin",
                         "sasl.password": ADMIN_PASSWORD})
    for f in admin.create_topics([NewTopic("py-sasl", num_partitions=1,
                                           replication_factor=1)]).values():
        f.result(DEADLINE_S)
    upserts = [
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192),
                                     b"carol-secret"),
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                     b"carol-secret"),
    ]
    for f in admin.alter_user_scram_credentials(upserts).values():
        f.result(DEADLINE_S)
    described = admin.describe_user_scram_credentials(["carol"])
    infos = described["carol"].result(DEADLINE_S).scram_credential_infos
    got = sorted((i.mechanism, i.iterations) for i in infos)
    check(got == [(ScramMechanism.SCRAM_SHA_256, 8192), (ScramMechanism.SCRAM_SHA_512, 4096)],
          f"carol's credentials described: {got}")
    print("confluent-kafka admin: ok")


def kafka_python_scram():
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    auth = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                sasl_plain_username="carol", sasl_plain_password="carol-secret")
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, **auth)
    for i in range(5):
        p.send("py-sasl", value=f"kp-{i}".encode(), partition=0)
    p.flush()
    p.close()
    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, **auth)
    c.assign([TopicPartition("py-sasl", 0)])
    c.seek_to_beginning()
    got = []
    deadline = time.time() + DEADLINE_S
    while len(got) < 5 and time.time() < deadline:
        for msgs in c.poll(timeout_ms=300).values():
            got.extend(m.value for m in msgs)
    c.close()
    check(got == [f"kp-{i}".encode() for i in range(5)], f"kafka-python read back {got}")

    refused = None
    try:
        KafkaAdminClient(bootstrap_servers=BOOTSTRAP, security_protocol="SASL_PLAINTEXT",
                         sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="carol",
                         sasl_plain_password="wrong", api_version_auto_timeout_ms=5000).close()
    except Exception as e:  # noqa: BLE001 - any failure to connect is the check
        refused = e
    check(refused is not None, "a wrong SCRAM password is refused")
    print("kafka-python scram: ok")


def confluent_scram():
    from confluent_kafka import Consumer, Producer, TopicPartition
    auth = {"bootstrap.servers": BOOTSTRAP, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "carol",
            "sasl.password": "carol-secret"}
    p = Producer(auth)
    for i in range(5):
        p.produce("py-sasl", value=f"ck-{i}".encode(), partition=0)
    check(p.flush(DEADLINE_S) == 0, "confluent-kafka delivered")
    c = Consumer({**auth, "group.id": "py-sasl-group", "enable.auto.commit": False})
    c.assign([TopicPartition("py-sasl", 0, 0)])
    got = []
    deadline = time.time() + DEADLINE_S
    while len(got) < 10 and time.time() < deadline:
        m = c.poll(0.3)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    check(len(got) == 10 and got[5:] == [f"ck-{i}".encode() for i in range(5)],
          f"confluent-kafka read back {got}")
    print("confluent-kafka scram: ok")


def aiokafka_plain():
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    async def read():
        c = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                             security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                             sasl_plain_username="admin", sasl_plain_password=ADMIN_PASSWORD)
        await c.start()
        got = []
        try:
            tp = TopicPartition("py-sasl", 0)
            c.assign([tp])
            await c.seek_to_beginning(tp)
            deadline = time.time() + DEADLINE_S
            while len(got) < 10 and time.time() < deadline:
                for msgs in (await c.getmany(timeout_ms=300)).values():
                    got.extend(m.value for m in msgs)
        finally:
            await c.stop()
        return got

    got = asyncio.run(read())
    check(len(got) == 10, f"aiokafka read {len(got)} records")
    print("aiokafka plain: ok")


if __name__ == "__main__":
    confluent_admin()
    kafka_python_scram()
    confluent_scram()
    aiokafka_plain()
