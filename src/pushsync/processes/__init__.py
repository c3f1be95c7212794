"""Composition roots: one per process (the receiver; the sync worker with its managers)."""
