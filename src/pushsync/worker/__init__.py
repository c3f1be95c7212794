"""The sync worker: claimed notification rows in, reservations out."""
