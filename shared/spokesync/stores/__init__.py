"""spokesync.stores."""
