"""bench/worker: the sync worker under a burst, against a naive one-GetItem-per-row worker."""
