"""battery_hawk.insight."""
