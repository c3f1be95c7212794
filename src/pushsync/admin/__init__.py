"""The admin listener: health, metrics, the rooms' status page."""
