"""bench/fleet: pushsync at fleet size (issue #17) against the simulator."""
