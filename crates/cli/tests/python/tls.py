"""Real clients over TLS: confluent-kafka (librdkafka with OpenSSL) and kafka-python
(Python's ssl module) produce and read back through a krust SSL or SASL_SSL listener,
verifying the broker's certificate against the test CA.

argv: bootstrap, CA file, security protocol, then for SASL_SSL a PLAIN user and password.
Exits non-zero on the first failed check."""

import sys
import time

BOOTSTRAP, CA, PROTOCOL = sys.argv[1], sys.argv[2], sys.argv[3]
USER, PASSWORD = (sys.argv[4], sys.argv[5]) if PROTOCOL == "SASL_SSL" else (None, None)
DEADLINE_S = 30


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def confluent():
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    conf = {"bootstrap.servers": BOOTSTRAP, "security.protocol": PROTOCOL,
            "ssl.ca.location": CA}
    if USER:
        conf.update({"sasl.mechanism": "PLAIN", "sasl.username": USER,
                     "sasl.password": PASSWORD})
    admin = AdminClient(conf)
    for f in admin.create_topics([NewTopic("tls", num_partitions=1,
                                           replication_factor=-1)]).values():
        f.result(DEADLINE_S)
    p = Producer({**conf, "acks": "all"})
    for i in range(20):
        p.produce("tls", value=f"ck-{i}".encode() * 100, partition=0)
    check(p.flush(DEADLINE_S) == 0, "confluent-kafka delivered over TLS")
    c = Consumer({**conf, "group.id": "tls-group", "enable.auto.commit": False})
    c.assign([TopicPartition("tls", 0, 0)])
    got = []
    deadline = time.time() + DEADLINE_S
    while len(got) < 20 and time.time() < deadline:
        m = c.poll(0.3)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    check(got == [f"ck-{i}".encode() * 100 for i in range(20)],
          f"confluent-kafka read back {len(got)} records")
    print("confluent-kafka tls: ok")


def kafka_python():
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    conf = dict(security_protocol=PROTOCOL, ssl_cafile=CA, ssl_check_hostname=True)
    if USER:
        conf.update(sasl_mechanism="PLAIN", sasl_plain_username=USER,
                    sasl_plain_password=PASSWORD)
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, **conf)
    for i in range(5):
        p.send("tls", value=f"kp-{i}".encode(), partition=0)
    p.flush()
    p.close()
    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, **conf)
    c.assign([TopicPartition("tls", 0)])
    c.seek_to_beginning()
    got = []
    deadline = time.time() + DEADLINE_S
    while len(got) < 25 and time.time() < deadline:
        for msgs in c.poll(timeout_ms=300).values():
            got.extend(m.value for m in msgs)
    c.close()
    check(len(got) == 25 and got[20:] == [f"kp-{i}".encode() for i in range(5)],
          f"kafka-python read back {len(got)} records")
    print("kafka-python tls: ok")


if __name__ == "__main__":
    confluent()
    kafka_python()
