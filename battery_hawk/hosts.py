"""What a host name or IP address in the config may look like (mqtt.broker, http.listen, a
proxy's host), and the fix for the forms people write instead.

Host names follow RFC 1123 (labels of letters, digits and '-', at most 63 characters, at
most 253 in all); '_' is let through, as some local networks use it. IP addresses are
whatever :mod:`ipaddress` accepts, IPv6 with a zone (``fe80::1%eth0``) included.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["host_problem"]

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d+)$")


def host_problem(text: str, port_key: str) -> str | None:
    """Why ``text`` is no host name or IP address (a sentence with the fix), or None.

    ``port_key`` is the config key the port belongs in, named when ``text`` carries one.
    """
    if not text.strip():
        return "is empty: give a host name or IP address, e.g. 192.168.1.10 or broker.local"
    if "://" in text:
        scheme, _, rest = text.partition("://")
        return (f"{text!r} is a URL: give the host only ({rest.split('/')[0].split(':')[0]!r}, "
                f"without {scheme}://); the port goes in {port_key}")
    found = _HOST_PORT.match(text)
    if found and (found["v6"] is None or _is_ip(found["v6"])):
        host = found["v6"] or found["host"]
        return (f"{text!r} holds a port: give the host only ({host!r}) and the port as "
                f"{port_key}: {found['port']}")
    if text.startswith("[") and text.endswith("]") and _is_ip(text[1:-1]):
        return f"{text!r}: give an IPv6 address without brackets ({text[1:-1]!r})"
    if _is_ip(text):
        return None
    if re.fullmatch(r"[0-9.]+", text):
        return f"{text!r} is not an IP address (four numbers 0-255, e.g. 192.168.1.10)"
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    if len(text) > 253 or not all(_LABEL.match(label) for label in labels):
        return (f"{text!r} is not a host name or IP address: a name holds letters, digits, "
                "'-' and dots, e.g. broker.local")
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
