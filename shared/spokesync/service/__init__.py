"""spokesync.service."""
