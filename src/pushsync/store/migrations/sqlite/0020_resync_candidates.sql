-- A claim of resyncs (claim_resyncs) walks the requested rooms in their order, then the rooms
-- due for their periodic read, each from an index, instead of sorting every room: at 50,000
-- rooms that sort took 60-80 ms under the writers' lock, at every round of every worker.
CREATE INDEX room_resync_requested ON room (last_synced_at, mailbox) WHERE needs_resync;
CREATE INDEX room_last_synced ON room (last_synced_at, mailbox);
