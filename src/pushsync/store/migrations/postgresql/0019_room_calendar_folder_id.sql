-- The id of the room's EWS calendar folder (GetFolder; or the ParentFolderId of its first full
-- read's items), written with that read, so that no worker process asks Exchange for it again
-- (ews/calendar_source.py). NULL for a room never read over EWS, and for Graph rooms.
ALTER TABLE room ADD COLUMN calendar_folder_id TEXT;
