"""The `pushsync` command line."""
