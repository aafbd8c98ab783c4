"""Reads the events topic the way a read_committed consumer sees it, for tests
that check what is (and is not) in the log."""

import collections
import json
import time

from confluent_kafka import Consumer, TopicPartition

TOPIC = "vetpms.events"


Record = collections.namedtuple("Record", "partition offset key headers value")


def read_records(brokers, topic=TOPIC, partitions=None, timeout=120):
    """Every committed record of the topic as Record(partition, offset, key,
    headers, value), in each partition's order; partitions: how many (None:
    the topic's own count). Raises if the end of every partition is not
    reached within timeout seconds: a partial read would look like missing
    events (it did, on a loaded machine)."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": "e2e-reader",
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    records, at_end = [], set()
    try:
        if partitions is None:
            partitions = len(c.list_topics(topic, timeout=10).topics[topic].partitions)
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.time() + timeout
        while len(at_end) < partitions and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    at_end.add(m.partition())
                continue
            at_end.discard(m.partition())
            records.append(Record(m.partition(), m.offset(), m.key(), dict(m.headers() or []),
                                  m.value()))
    finally:
        c.close()
    if len(at_end) < partitions:
        raise AssertionError(f"read_records: only {len(at_end)} of {partitions} partitions of "
                             f"{topic} read to their end in {timeout}s ({len(records)} records)")
    return records


def read_all(brokers, topic=TOPIC, partitions=6, timeout=120):
    """Every committed record of the topic as (partition, offset, headers, value)."""
    return [(r.partition, r.offset, r.headers, r.value)
            for r in read_records(brokers, topic, partitions, timeout)]


def events(brokers, **kw):
    """The records that are JSON objects (other tests put poison in the topic on
    purpose, to prove the projector dead-letters it)."""
    out = []
    for (_p, _o, _h, v) in read_all(brokers, **kw):
        try:
            e = json.loads(v)
        except (ValueError, TypeError):
            continue
        if isinstance(e, dict):
            out.append(e)
    return out
