"""spokesync.secrets."""
