"""battery_hawk.ble."""
