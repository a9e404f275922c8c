"""battery_hawk.mqtt."""
