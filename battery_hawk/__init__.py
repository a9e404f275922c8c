"""battery-hawk: BLE battery monitors to MQTT, Home-Assistant style."""

__all__ = ["__version__"]

__version__ = "0.1.0"
