"""TLS (CA, client certificate) and username/password against a real mosquitto."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from battery_hawk.errors import ConfigError
from battery_hawk.mqtt import BrokerSettings, MQTTInterface, TLSSettings
from tests.support.brokers import Mosquitto, wait_until

from .conftest import FAST
from .pki import make_pki


async def test_tls_with_ca_and_client_certificate_connects_and_delivers(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    tls_listener = (f"cafile {pki.ca_cert}\ncertfile {pki.server_cert}\n"
                    f"keyfile {pki.server_key}\nrequire_certificate true\n")
    with Mosquitto(extra_config=tls_listener) as broker:
        good = TLSSettings(enabled=True, ca_cert=str(pki.ca_cert),
                           cert_file=str(pki.client_cert), key_file=str(pki.client_key))
        iface = MQTTInterface(BrokerSettings("127.0.0.1", broker.port, tls=good,
                                             client_id="tls-good"), FAST)
        async with iface:
            assert await iface.wait_connected(10)
            await iface.publish("bh/tls", "secret")
            assert await iface.flush(5)
        # without the client certificate the broker refuses the handshake
        no_cert = TLSSettings(enabled=True, ca_cert=str(pki.ca_cert))
        refused = MQTTInterface(BrokerSettings("127.0.0.1", broker.port, tls=no_cert,
                                               client_id="tls-refused"), FAST)
        async with refused:
            await wait_until(lambda: refused.stats.consecutive_failures >= 2)
            assert refused.stats.total_connections == 0


def test_unreadable_ca_file_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    tls = TLSSettings(enabled=True, ca_cert=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.ca_cert"):
        MQTTInterface(BrokerSettings("127.0.0.1", 8883, tls=tls), FAST)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    """A mosquitto password file with user ``hawk``, password ``s3cret``."""
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "hawk", "s3cret"],
                   check=True, capture_output=True, timeout=10)
    passwd.chmod(0o600)
    return passwd


async def test_username_and_password_are_sent_and_bad_ones_refused(password_file: Path) -> None:
    passwd = password_file
    auth = f"allow_anonymous false\npassword_file {passwd}\n"
    with Mosquitto(extra_config=auth) as broker:
        iface = MQTTInterface(BrokerSettings("127.0.0.1", broker.port, username="hawk",
                                             password="s3cret", client_id="auth-good"), FAST)
        async with iface:
            assert await iface.wait_connected(10)
        wrong = MQTTInterface(BrokerSettings("127.0.0.1", broker.port, username="hawk",
                                             password="nope", client_id="auth-bad"), FAST)
        async with wrong:
            await wait_until(lambda: wrong.stats.consecutive_failures >= 2)
            assert "authori" in (wrong.stats.last_error or "").lower()
