"""battery_hawk.http."""
