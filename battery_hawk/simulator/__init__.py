"""battery_hawk.simulator."""
