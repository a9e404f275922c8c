"""battery_hawk.protocols."""
