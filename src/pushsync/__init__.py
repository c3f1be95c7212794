"""pushsync: room bookings kept in sync with Exchange by push notifications."""
