"""spokesync.queue."""
