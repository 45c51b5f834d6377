"""spokesync.sandbox."""
