"""Manages ACLs on a krust SASL_PLAINTEXT listener with confluent-kafka's admin API, and
sees kafka-python refused by them.

argv: bootstrap. Users: admin (a super user), bob (no ACL at first). Exits non-zero on
the first failed check."""

import sys
import time

BOOTSTRAP = sys.argv[1]
DEADLINE_S = 30


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def auth(user):
    return {"bootstrap.servers": BOOTSTRAP, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": user,
            "sasl.password": f"{user}-secret"}


def confluent_acls():
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                       AclPermissionType, AdminClient, NewTopic,
                                       ResourcePatternType, ResourceType)
    admin = AdminClient(auth("admin"))
    for f in admin.create_topics([NewTopic("py-acl", num_partitions=1,
                                           replication_factor=1)]).values():
        f.result(DEADLINE_S)
    binding = AclBinding(ResourceType.TOPIC, "py-acl", ResourcePatternType.LITERAL,
                         "User:bob", "*", AclOperation.READ, AclPermissionType.ALLOW)
    for f in admin.create_acls([binding]).values():
        f.result(DEADLINE_S)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    found = admin.describe_acls(everything).result(DEADLINE_S)
    check(binding in found, f"described: {found}")
    # bob, who may only read py-acl, may not create ACLs (librdkafka drops DescribeAcls'
    # error code, so a refused listing would read as an empty one).
    refused = None
    bob = AdminClient(auth("bob"))
    mine = AclBinding(ResourceType.TOPIC, "py-acl", ResourcePatternType.LITERAL,
                      "User:bob", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
    try:
        for f in bob.create_acls([mine]).values():
            f.result(DEADLINE_S)
    except Exception as e:  # noqa: BLE001 - the refusal is the check
        refused = e
    check(refused is not None and "AUTHORIZATION" in str(refused).upper(),
          f"bob creating ACLs: {refused}")
    bob_filter = AclBindingFilter(ResourceType.TOPIC, "py-acl", ResourcePatternType.MATCH,
                                  "User:bob", None, AclOperation.ANY, AclPermissionType.ANY)
    deleted = admin.delete_acls([bob_filter])[bob_filter].result(DEADLINE_S)
    check(deleted == [binding], f"deleted: {deleted}")
    found = admin.describe_acls(everything).result(DEADLINE_S)
    check(binding not in found, f"still there: {found}")
    print("confluent-kafka acls: ok")


def kafka_python_refused():
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="PLAIN", sasl_plain_username="bob",
                      sasl_plain_password="bob-secret", max_block_ms=10000)
    refused = None
    try:
        p.send("secret", value=b"x", partition=0).get(timeout=DEADLINE_S)
    except TopicAuthorizationFailedError as e:
        refused = e
    p.close()
    check(refused is not None, "bob writing to secret is refused")
    print("kafka-python refused: ok")


if __name__ == "__main__":
    confluent_acls()
    kafka_python_refused()
