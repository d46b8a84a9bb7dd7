"""Authenticates to a krust SASL_PLAINTEXT listener with SASL/OAUTHBEARER from
confluent-kafka (librdkafka) and kafka-python.

argv: bootstrap, then the mode:
  unsecured            the broker runs Kafka's unsecured validator, requires scope "kafka"
                       and lets only alice (a super user) create topics: librdkafka's own
                       unsecured tokens and kafka-python with a hand-made unsigned token.
  signed <token file>  the broker checks signatures: the file holds a token for alice
                       that its identity provider signed, handed to both clients; a token
                       with a broken signature is refused.
Exits non-zero on the first failed check."""

import base64
import json
import sys
import time

BOOTSTRAP = sys.argv[1]
MODE = sys.argv[2]
DEADLINE_S = 30


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(sub, scope):
    # Whole milliseconds, never ahead of the clock (the broker allows no clock skew).
    now = int(time.time() * 1000) / 1000
    claims = {"sub": sub, "iat": now, "exp": now + 300, "scope": scope}
    return "%s.%s." % (b64(b'{"alg":"none"}'), b64(json.dumps(claims).encode()))


def confluent_round_trip(conf, topic):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient(dict(conf))
    for f in admin.create_topics([NewTopic(topic, num_partitions=1,
                                           replication_factor=1)]).values():
        f.result(DEADLINE_S)
    p = Producer(dict(conf, **{"linger.ms": 0}))
    for i in range(10):
        p.produce(topic, value=b"c%d" % i)
    check(p.flush(DEADLINE_S) == 0, "confluent-kafka delivered everything")
    c = Consumer(dict(conf, **{"group.id": topic + "-g", "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got = []
    deadline = time.time() + DEADLINE_S
    while len(got) < 10 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    check(got == [b"c%d" % i for i in range(10)], "confluent-kafka read %r" % got)


def confluent_refused(conf, what, status):
    """A client whose token the broker refuses: its requests fail, and librdkafka logs the
    broker's error status."""
    import logging
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    class Capture(logging.Handler):
        def __init__(self):
            super().__init__()
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    capture = Capture()
    logger = logging.getLogger("rdkafka." + what)
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    admin = AdminClient(dict(conf, **{"logger": logger}))
    try:
        admin.list_topics(timeout=5)
        raise AssertionError(what + ": listed topics")
    except KafkaException:
        pass
    admin.poll(1)
    check(any(status in line for line in capture.lines), what + ": %r" % capture.lines)


def kafka_python_round_trip(token, topic):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.sasl.oauth import AbstractTokenProvider

    class Provider(AbstractTokenProvider):
        def token(self):
            return token

    conf = {"bootstrap_servers": BOOTSTRAP, "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": Provider()}
    p = KafkaProducer(**conf)
    for i in range(5):
        p.send(topic, b"k%d" % i).get(timeout=DEADLINE_S)
    p.close()
    c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000, **conf)
    values = [m.value for m in c]
    c.close()
    check(values[-5:] == [b"k%d" % i for i in range(5)], "kafka-python read %r" % values)


def unsecured():
    conf = {"bootstrap.servers": BOOTSTRAP, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER", "enable.sasl.oauthbearer.unsecure.jwt": True,
            "sasl.oauthbearer.config": "principal=alice scope=kafka"}
    confluent_round_trip(conf, "py-unsecured")
    print("confluent-kafka unsecured: ok")

    # bob's token is valid, but bob may not create topics.
    from confluent_kafka.admin import AdminClient, NewTopic
    from confluent_kafka import KafkaException
    bob = AdminClient(dict(conf, **{"sasl.oauthbearer.config": "principal=bob scope=kafka"}))
    try:
        for f in bob.create_topics([NewTopic("py-bob", num_partitions=1,
                                             replication_factor=1)]).values():
            f.result(DEADLINE_S)
        raise AssertionError("bob created a topic")
    except KafkaException as e:
        check("AUTHORIZATION" in e.args[0].name(), "bob: %r" % e)
    # Without the required scope, alice's token is refused.
    confluent_refused(dict(conf, **{"sasl.oauthbearer.config": "principal=alice"}),
                      "no-scope", '{"status":"insufficient_scope", "scope":"[kafka]"}')
    print("confluent-kafka refusals: ok")

    kafka_python_round_trip(unsigned_token("alice", "kafka"), "py-unsecured")
    print("kafka-python unsecured: ok")


def signed(token_file):
    with open(token_file) as f:
        token = f.read().strip()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))

    def oauth_cb(_config):
        return token, float(claims["exp"])

    conf = {"bootstrap.servers": BOOTSTRAP, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER", "oauth_cb": oauth_cb}
    confluent_round_trip(conf, "py-signed")
    print("confluent-kafka signed: ok")

    head, payload, sig = token.split(".")
    forged = "%s.%s.%s" % (head, b64(json.dumps(dict(claims, sub="mallory")).encode()), sig)
    confluent_refused(dict(conf, **{"oauth_cb": lambda _c: (forged, float(claims["exp"]))}),
                      "forged", '{"status":"invalid_token"}')
    print("confluent-kafka forged: ok")

    kafka_python_round_trip(token, "py-signed")
    print("kafka-python signed: ok")


if MODE == "unsecured":
    unsecured()
elif MODE == "signed":
    signed(sys.argv[3])
else:
    raise SystemExit("unknown mode " + MODE)
