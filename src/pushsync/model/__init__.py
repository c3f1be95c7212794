"""The values the rest is about: a notification row, a reservation and what is observed of it."""
