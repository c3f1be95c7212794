"""The naive baseline: Flask + exchangelib's SendNotification.parse + one SQLite commit per request.

What a first version of the receiver would look like; run under gunicorn with sync workers.
The commit is as durable as pushsync's (WAL, synchronous=FULL), so the comparison is fair.
"""

from __future__ import annotations

import os
import sqlite3
import threading

from exchangelib.services import SendNotification
from flask import Flask, Response, request

DATABASE = os.environ.get("NAIVE_DATABASE", "var/bench/naive.db")
SCHEMA = """
CREATE TABLE IF NOT EXISTS sync_notification (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    watermark TEXT,
    previous_watermark TEXT,
    event_time TEXT,
    item_id TEXT,
    item_change_key TEXT,
    parent_folder_id TEXT,
    remote_addr TEXT,
    UNIQUE (subscription_id, watermark)
)
"""
INSERT = """
INSERT OR IGNORE INTO sync_notification (subscription_id, event_type, watermark,
    previous_watermark, event_time, item_id, item_change_key, parent_folder_id, remote_addr)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

app = Flask(__name__)
service = SendNotification(protocol=None)
local = threading.local()


def connection() -> sqlite3.Connection:
    if not hasattr(local, "connection"):
        db = sqlite3.connect(DATABASE, timeout=30)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute(SCHEMA)
        local.connection = db
    return local.connection


def _row(notification, event):
    item = getattr(event, "item_id", None)
    parent = getattr(event, "parent_folder_id", None)
    return (
        notification.subscription_id,
        type(event).__name__.removesuffix("Event"),
        event.watermark,
        notification.previous_watermark,
        event.timestamp.isoformat() if getattr(event, "timestamp", None) else None,
        item.id if item else None,
        item.changekey if item else None,
        parent.id if parent else None,
        request.remote_addr,
    )


@app.post("/Webservices/SyncNotification.svc")
def send_notification() -> Response:
    rows = [(n, e) for n in service.parse(request.get_data()) for e in n.events]
    db = connection()
    with db:  # one transaction, committed (and fsynced) before the answer
        db.executemany(INSERT, [_row(n, e) for n, e in rows])
    return Response(service.ok_payload(), content_type="text/xml; charset=utf-8")
