"""A tenant built from envelopes produced straight into the events topic (the
read-side tests: scheduling, records, stock, billing, archive). The test's
class keeps its own `stack`, `producer`, `t` (the tenant id), `seqs` ({} at
start) and `sent` (0 at start); this mixin gives it the per-aggregate `seq`
and a `send` that waits until every event sent is applied or dead-lettered."""

from readmodel import query
from stack import wait_for


class ProducedTenant:
    # the exact count also catches an event applied twice; a test whose
    # tenant also gets events from the writer waits for at least as many
    exact_count = True
    send_timeout = 30

    def seq(self, agg):
        self.seqs[agg] = self.seqs.get(agg, 0) + 1
        return self.seqs[agg]

    def logged_or_dead(self):
        return query(self.stack, "SELECT (SELECT count(*) FROM read.event_log WHERE "
                                 "tenant_id = %s) + (SELECT count(*) FROM read.dead_letters "
                                 "WHERE tenant_id = %s)", (self.t, self.t))[0][0]

    def send(self, envs):
        self.producer.send_all(envs)
        self.sent += len(envs)
        if self.exact_count:
            done = lambda: self.logged_or_dead() == self.sent  # noqa: E731
        else:
            done = lambda: self.logged_or_dead() >= self.sent  # noqa: E731
        wait_for(done, timeout=self.send_timeout, what="events applied or dead-lettered")
