-- 0021_deliveries_one_key: one unique key on notification.deliveries for
-- "one delivery per event, recipient and channel", not two.
--
-- message_id is made from exactly that triple: the first 128 bits of
-- SHA-256("event_id|recipient|channel_id") in hex (on_event.c), so that a
-- delivery made again for the same event gets the same webhook-id.  Its
-- unique index therefore already refuses a second row for the same
-- triple, and deliveries_once (event_id, recipient, channel_id) only
-- doubled it.  Nothing reads deliveries by that key.  Every delivery paid
-- for both: two index entries when it was made, two more when the sender
-- recorded its outcome (an update that changes the status, so never HOT),
-- and the ON CONFLICT of its insert probed both keys.  The insert now
-- names its one key: ON CONFLICT (message_id) DO NOTHING.
ALTER TABLE notification.deliveries DROP CONSTRAINT IF EXISTS deliveries_once;
COMMENT ON COLUMN notification.deliveries.message_id IS 'The webhook-id (and Message-ID) of every attempt of this delivery: msg_ and the first 128 bits of SHA-256 of "event_id|recipient|channel_id" in hex. Unique, so it is also the key that makes one delivery per event, recipient and channel.';
