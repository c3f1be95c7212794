"""Storage: one small connector interface, a SQLite and a PostgreSQL implementation.

The business logic (inbox, subscriptions, reservations) is written once on top of `Connector`;
every SQL statement is named and kept per dialect in `sql/<dialect>/*.sql`.
"""

from pushsync.store.connector import Connector, Session
from pushsync.store.open import connect, open_store

__all__ = ["Connector", "Session", "connect", "open_store"]
