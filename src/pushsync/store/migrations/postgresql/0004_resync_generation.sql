-- Every resync request counts up the room's generation. A resync notes the generation before
-- it reads the calendar and clears the request only if no newer one arrived meanwhile: a
-- request made during the read (events lost after it started) is kept for the next round.
ALTER TABLE room ADD COLUMN resync_generation INTEGER NOT NULL DEFAULT 0;
