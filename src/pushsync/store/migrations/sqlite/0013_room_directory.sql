-- What the directory (Graph's Places API) says about a room, for the booking system: its name,
-- capacity, building and floor; where it was found (a room list's address, or 'all rooms');
-- since when the directory no longer lists it, and when pushsync let go of it after the grace
-- period (src/pushsync/graph/room_discovery.py). A room listed again is taken back.
ALTER TABLE room ADD COLUMN display_name TEXT;
ALTER TABLE room ADD COLUMN capacity INTEGER;
ALTER TABLE room ADD COLUMN building TEXT;
ALTER TABLE room ADD COLUMN floor_number INTEGER;
ALTER TABLE room ADD COLUMN discovered_from TEXT;
ALTER TABLE room ADD COLUMN missing_since TIMESTAMP;
ALTER TABLE room ADD COLUMN removed_at TIMESTAMP;

-- The last answer of each source room discovery reads (a room list's address, or 'all rooms'):
-- how many rooms it listed, and why it changed nothing (failed, or empty), for /rooms and the
-- status page.
CREATE TABLE room_discovery (
    source      TEXT PRIMARY KEY,
    checked_at  TIMESTAMP NOT NULL,
    listed      INTEGER NOT NULL,
    problem     TEXT
);
