-- 0007_bus_drop_seq_index: bus.events carried an index on (partition, seq)
-- "for the lag figures", but no query uses it: the lag count and the
-- catch-up read both walk (partition, txid, seq).  Every outbox write paid
-- for one more B-tree insert per event; the durable bus's throughput is
-- bounded by the producer's writes, so it goes.
DROP INDEX bus.events_partition_seq_idx;
