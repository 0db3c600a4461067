"""HTTPS and WSS with a CA and a certificate made by the test (the ``openssl`` command; the
``cryptography`` package is not a dependency), and the warning for tokens in the clear."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import BridgeFactory, eventually, tcp_device

from bridge.client import BridgeClient, BridgeUnavailable
from bridge.config import ConfigError, parse_config
from bridge.server import RunningServer, exposure_warnings, start_server
from simulators.modbus import ModbusSimulator

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command (.ci/run)")


def openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA (ca.pem) and a server certificate it signed for localhost and 127.0.0.1."""
    where = tmp_path_factory.mktemp("tls")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=device-bridge test CA", cwd=where)  # fmt: skip
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
            cwd=where)  # fmt: skip
    (where / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf",
            cwd=where)  # fmt: skip
    return where


async def tls_bridge(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory, certificates: Path
) -> RunningServer:
    _, port = simulator
    running, _ = await bridge_factory(
        [tcp_device("boiler", port)],
        tls_cert_file=str(certificates / "server.pem"),
        tls_key_file=str(certificates / "server.key"),
    )
    return running


async def test_readings_and_the_stream_over_tls_checked_against_the_ca(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory, certificates: Path
) -> None:
    running = await tls_bridge(simulator, bridge_factory, certificates)
    assert running.url.startswith("https://127.0.0.1:")
    async with BridgeClient(running.url, ca_file=str(certificates / "ca.pem")) as bridge:
        await eventually(lambda: running.bridge.devices["boiler"].status == "online")
        assert (await bridge.latest("boiler", "temperature")).value == 21.5
        async for item in bridge.subscribe(devices=["boiler"]):  # wss://
            assert getattr(item, "device", None) == "boiler"
            break
    # without the CA the certificate is not trusted: no answer is taken from it
    async with BridgeClient(running.url, timeout=2) as untrusting:
        with pytest.raises(BridgeUnavailable, match="certificate"):
            await untrusting.latest("boiler", "temperature")


async def test_the_ca_file_may_come_from_the_environment(
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    certificates: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running = await tls_bridge(simulator, bridge_factory, certificates)
    monkeypatch.setenv("BRIDGE_CA_FILE", str(certificates / "ca.pem"))
    async with BridgeClient(running.url) as bridge:
        assert [d.id for d in await bridge.devices()] == ["boiler"]


async def test_a_certificate_that_cannot_be_loaded_is_a_config_error(
    certificates: Path, tmp_path: Path
) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    config = parse_config(
        {
            "server": {"port": 0, "tls_cert_file": str(tmp_path / "bad.pem"),
                       "tls_key_file": str(certificates / "server.key")},
            "devices": [tcp_device("boiler", 1)],
        }
    )  # fmt: skip
    with pytest.raises(ConfigError, match="cannot be loaded"):
        await start_server(config)


def test_tokens_on_a_listener_others_can_reach_without_tls_are_warned_about() -> None:
    def settings(**server: object) -> object:
        return parse_config({"server": server, "devices": [tcp_device("b", 1)]}).settings

    exposed = exposure_warnings(settings(host="0.0.0.0", read_token="r"))  # type: ignore[arg-type]
    assert any("in the clear" in w and "BRIDGE_TLS_CERT_FILE" in w for w in exposed)
    assert exposure_warnings(settings(host="127.0.0.1", read_token="r")) == []  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="both tls_cert_file and tls_key_file"):
        settings(tls_cert_file="x.pem")
