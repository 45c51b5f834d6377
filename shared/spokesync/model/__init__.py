"""spokesync.model."""
