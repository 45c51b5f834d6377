"""spokesync: hub-and-spoke sync of shared calendars (Google Calendar, Exchange)."""

__version__ = "0.1.0"
