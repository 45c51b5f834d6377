"""spokesync.connectors."""
