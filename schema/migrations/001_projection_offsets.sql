-- Consumer positions of the projector, written in the same transaction as the
-- rows an event batch produced: the read model and its offsets move together.
CREATE TABLE projection_offsets (
    topic       text        NOT NULL,
    partition   integer     NOT NULL CHECK (partition >= 0),
    next_offset bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
