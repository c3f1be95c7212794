-- The end of the back-off Exchange asked for on this room (ErrorServerBusy, HTTP 429/503), so
-- that every worker process honours it, not only the one that was refused.
ALTER TABLE room ADD COLUMN paused_until TIMESTAMP;
