"""Producing domain events from the tests: envelopes as EVENTS.md describes them
(key = tenant_id, headers type and v) through confluent_kafka with the murmur2
partitioner the writer uses, transactional or not."""

import json
import uuid
from datetime import datetime, timezone

from confluent_kafka import Producer

TOPIC = "vetpms.events"

# brokers -> [(partition, offset)] of every record produced here into the events
# topic: records written behind the writer's back, which its rebuild may refuse
# (the projector tests' poison on purpose, events of tenants never provisioned).
# stack.py quarantines them for the writers of the same stack, as ops would
# after inspecting them; the writer still applies those it can read.
BEHIND_THE_WRITER = {}


def now_rfc3339():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id():
    return str(uuid.uuid4())


def envelope(type_, tenant, aggregate, aggregate_id, seq, data, at=None, v=1, event_id=None):
    return {"id": event_id or new_id(), "type": type_, "v": v, "tenant_id": tenant,
            "aggregate": aggregate, "aggregate_id": aggregate_id, "seq": seq,
            "command_id": new_id(), "actor": "e2e", "at": at or now_rfc3339(), "data": data}


class EventProducer:
    """Produces envelopes (or raw bytes) and remembers where each one landed:
    delivered[i] = (partition, offset) in produce order."""

    def __init__(self, brokers, transactional_id=None, topic=TOPIC):
        conf = {"bootstrap.servers": brokers, "partitioner": "murmur2_random",
                "enable.idempotence": True, "linger.ms": 5}
        if transactional_id:
            conf["transactional.id"] = transactional_id
        self.p = Producer(conf)
        self.brokers = brokers
        self.topic = topic
        self.transactional = bool(transactional_id)
        self.delivered = []
        self.errors = []
        if self.transactional:
            self.p.init_transactions(30)

    def _report(self, index):
        def on_delivery(err, msg):
            if err:
                self.errors.append(err)
            else:
                self.delivered[index] = (msg.partition(), msg.offset())
                if self.topic == TOPIC:
                    BEHIND_THE_WRITER.setdefault(self.brokers, []).append(self.delivered[index])
        return on_delivery

    def send(self, env=None, raw=None, key=None, headers=None):
        if env is not None:
            value = json.dumps(env).encode()
            key = key or env["tenant_id"]
            headers = headers or [("type", env["type"]), ("v", str(env["v"]))]
        else:
            value = raw
        index = len(self.delivered)
        self.delivered.append(None)
        while True:
            try:
                self.p.produce(self.topic, value=value, key=key, headers=headers,
                               on_delivery=self._report(index))
                break
            except BufferError:
                self.p.poll(0.1)
        self.p.poll(0)
        return index

    def begin(self):
        self.p.begin_transaction()

    def commit(self):
        self.p.commit_transaction(30)

    def abort(self):
        self.p.abort_transaction(30)

    def flush(self):
        assert self.p.flush(30) == 0
        assert not self.errors, self.errors

    def close(self):
        """Releases the client before the stack's Kafka goes away."""
        self.p.flush(10)
        self.p = None

    def send_all(self, envs, per_transaction=500):
        """Envelopes in transactions of per_transaction events, then flush."""
        for i in range(0, len(envs), per_transaction):
            self.begin()
            for env in envs[i:i + per_transaction]:
                self.send(env)
            self.commit()
        self.flush()


# Builders of the catalog's data, by aggregate.
def tenant_provisioned(tenant, name="Clinic"):
    return envelope("TenantProvisioned", tenant, "tenant", tenant, 1,
                    {"name": name, "timezone": "Europe/Paris", "currency": "EUR"})


def client_registered(tenant, client, first="Ann", last="Smith", seq=1):
    return envelope("ClientRegistered", tenant, "client", client, seq,
                    {"first_name": first, "last_name": last, "email": f"{first}@example.org",
                     "phone": "+33 1 23", "address": "1 rue X"})


def patient_registered(tenant, patient, client, name="Rex", weight_g=12500, seq=1):
    return envelope("PatientRegistered", tenant, "patient", patient, seq,
                    {"client_id": client, "name": name, "species": "canine",
                     "breed": "Labrador", "sex": "male", "neutered": True,
                     "date_of_birth": "2020-05-01", "microchip": "250269812345678",
                     "color": "black", "weight_g": weight_g})


def weight_recorded(tenant, patient, seq, weight_g, measured_at):
    return envelope("WeightRecorded", tenant, "patient", patient, seq,
                    {"weight_g": weight_g, "measured_at": measured_at})
