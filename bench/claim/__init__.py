"""bench/claim: claim-and-complete throughput of the notification queue, both engines."""
