"""spokesync.web."""
