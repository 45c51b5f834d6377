"""spokesync.engine."""
