-- 0002_bus: the durable bus (DESIGN.md section 1). PostgreSQL is the truth,
-- nng pub/sub is only the doorbell: a service appends its events here in the
-- same transaction as its state change, publishes them after commit, and
-- consumers catch up from here past their durable cursors.

CREATE SCHEMA bus;
COMMENT ON SCHEMA bus IS 'The transactional outbox, consumer cursors, processed-event ledger and dead letters, used by every service through common/.';

CREATE TABLE bus.settings (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    partitions  integer NOT NULL DEFAULT 16 CHECK (partitions BETWEEN 1 AND 1024),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO bus.settings DEFAULT VALUES;
COMMENT ON TABLE bus.settings IS 'One row: the number of partitions P; each event goes to partition hash(case_id) mod P. Changing P reshuffles cases between partitions: only with all consumers stopped and caught up.';

CREATE TABLE bus.events (
    seq         bigserial PRIMARY KEY,
    event_id    uuid NOT NULL UNIQUE,
    type        text NOT NULL CHECK (char_length(type) BETWEEN 1 AND 100),
    site        text,
    case_id     uuid,
    partition   integer NOT NULL CHECK (partition >= 0),
    txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    payload     bytea NOT NULL
);
-- The catch-up read walks one transaction window at a time (see bus.cursors):
--   SELECT ... FROM bus.events
--    WHERE partition = $1 AND txid >= $floor AND txid < $top AND seq > $last
--    ORDER BY seq LIMIT $n
-- and finds the next window with min(txid) past the current one.
CREATE INDEX events_partition_txid_idx ON bus.events (partition, txid, seq);
-- The newest sequence per partition, for the lag figures.
CREATE INDEX events_partition_seq_idx ON bus.events (partition, seq);
COMMENT ON TABLE bus.events IS 'The outbox: every event ever emitted, appended in the emitter''s own transaction. Append-only; old rows below every consumer''s cursor may be pruned by operators.';
COMMENT ON COLUMN bus.events.seq IS 'Outbox order. Numbers are taken before commit, so a later number can commit first: never read seq > cursor without the txid guard.';
COMMENT ON COLUMN bus.events.event_id IS 'The Envelope''s UUID; consumers are idempotent on it (bus.processed).';
COMMENT ON COLUMN bus.events.type IS 'Event type, e.g. case.registered; also the topic prefix on the nng PUB socket.';
COMMENT ON COLUMN bus.events.site IS 'Site code (core.sites.code), not the uuid: the bus is read without joins. NULL for events of no site.';
COMMENT ON COLUMN bus.events.partition IS 'hash(case_id) mod bus.settings.partitions; events of one case share a partition and so are handled in order.';
COMMENT ON COLUMN bus.events.txid IS 'Writing transaction (pg_current_xact_id()). Every transaction below pg_snapshot_xmin(pg_current_snapshot()) has finished, so rows with txid below it are final: no more can appear. Catch-up reads such final rows window by window (bus.cursors). Note that seq > cursor AND txid < xmin is NOT enough: an older transaction can commit a higher seq while a younger one still holds a lower seq.';
COMMENT ON COLUMN bus.events.created_at IS 'clock_timestamp() at insert, for latency figures.';
COMMENT ON COLUMN bus.events.payload IS 'The serialized protobuf Envelope.';

CREATE TABLE bus.cursors (
    consumer      text NOT NULL CHECK (char_length(consumer) BETWEEN 1 AND 100),
    partition     integer NOT NULL CHECK (partition >= 0),
    window_floor  xid8 NOT NULL DEFAULT '0',
    window_top    xid8 NOT NULL DEFAULT '0',
    last_seq      bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, partition),
    CHECK (window_floor <= window_top)
);
COMMENT ON TABLE bus.cursors IS 'How far each consumer group has read each partition; moved in the same transaction as the handler''s effects. Replicas claim partitions with session advisory locks.';
COMMENT ON COLUMN bus.cursors.window_floor IS 'Every event of this partition with txid below window_floor has been handled.';
COMMENT ON COLUMN bus.cursors.window_top IS 'The window being read holds the events with window_floor <= txid < window_top; window_top was at most pg_snapshot_xmin when chosen, so the window''s rows are final and can be read in seq order.';
COMMENT ON COLUMN bus.cursors.last_seq IS 'Inside the window, the events up to this seq have been handled (0 at the start of a window).';

CREATE TABLE bus.processed (
    consumer      text NOT NULL,
    event_id      uuid NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_at_idx ON bus.processed (processed_at);
COMMENT ON TABLE bus.processed IS 'Events a consumer has applied, written with the effects: a second delivery (fast path and catch-up) has no second effect. Prunable once older than every cursor.';

CREATE TABLE bus.dead_letters (
    id           bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    consumer     text NOT NULL,
    partition    integer NOT NULL CHECK (partition >= 0),
    seq          bigint NOT NULL,
    event_id     uuid NOT NULL,
    attempts     integer NOT NULL CHECK (attempts >= 1),
    last_error   text NOT NULL DEFAULT '' CHECK (char_length(last_error) <= 10000),
    parked_at    timestamptz NOT NULL DEFAULT now(),
    replay_requested_at timestamptz,
    replayed_at  timestamptz
);
CREATE UNIQUE INDEX dead_letters_parked_once ON bus.dead_letters (consumer, event_id) WHERE replayed_at IS NULL;
CREATE INDEX dead_letters_consumer_idx ON bus.dead_letters (consumer, parked_at);
COMMENT ON TABLE bus.dead_letters IS 'Poison events: a handler failed on them a bounded number of times, so they were parked and the partition moved on. Operators list and replay them (replayed_at).';
COMMENT ON COLUMN bus.dead_letters.replay_requested_at IS 'Set by an operator (shouwen-bus replay ID): the owning consumer runs the handler on the event again, once.';
COMMENT ON COLUMN bus.dead_letters.seq IS 'bus.events.seq of the parked event (no foreign key: the outbox may be pruned).';
