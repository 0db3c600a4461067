"""The page in a real browser (chromium), on a bridge polling the demo's simulators.

One browser and one bridge for the module; the tests run in order on the same page (a
write, then a silenced device, then traffic), each waiting with a deadline, never sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from browser import Page, chromium, require_browser
from conftest import eventually

from bridge.demo import DemoSimulators, demo_simulators
from bridge.reload import reload
from bridge.server import RunningServer, start_server
from simulators.modbus.profile import DEMO_PROFILE, load_profile
from simulators.modbus.tcp import ModbusTcpServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

INTERVAL = 0.3
XSS = "<img src=x onerror=alert(1)>"
WRITE_TOKEN = "page-writer"
READ_TOKEN = "page-reader"
DEMO_DEVICES = ("boiler", "flow-a", "flow-b", "scale")


def fast(data: dict[str, Any]) -> None:
    """The demo's device file with short intervals and a string point showing markup."""
    for device in data["devices"]:
        device.update(interval=INTERVAL, timeout=0.5, backoff_max=0.6)
    boiler = data["devices"][0]
    boiler["points"].append(
        {"id": "label", "table": "holding", "address": 60, "type": "string", "length": 14}
    )


def status_of(device: str) -> str:
    return f"document.querySelector('[data-device=\"{device}\"] .status')?.textContent"


def cell(point: str, column: int) -> str:
    return f"document.querySelector('[data-point=\"{point}\"]')?.cells[{column}].textContent"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sims() -> AsyncIterator[DemoSimulators]:
    require_browser()
    async with demo_simulators() as running:
        running.modbus_tcp.units[1].set_value("holding", 60, "string", XSS, length=14)
        yield running


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def bridge(sims: DemoSimulators) -> AsyncIterator[RunningServer]:
    def edit(data: dict[str, Any]) -> None:
        fast(data)
        data["server"] = {"port": 0, "write_token": WRITE_TOKEN}

    server = await start_server(sims.config(edit=edit))
    yield server
    await server.close()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def page(bridge: RunningServer) -> AsyncIterator[Page]:
    with chromium() as driver:
        browser = Page(driver)
        await browser.open(bridge.url + "/")
        await browser.until("document.body.dataset.ready === 'true'")
        yield browser


async def test_every_demo_device_is_listed_with_its_status(page: Page) -> None:
    for device in DEMO_DEVICES:
        await page.until(f"{status_of(device)} === 'online'")
    assert await page.script("return document.querySelectorAll('.device').length") == 4
    # the stream is live, the link and the request plan are shown
    await page.until("document.getElementById('connection').textContent === 'live'")
    boiler = await page.text('[data-device="boiler"]')
    assert "tcp://127.0.0.1:" in boiler
    assert "read holding 0..1 (2 registers, fc 3): temperature" in boiler
    assert "shared with flow-b" in await page.text('[data-device="flow-a"]')


async def test_a_value_changed_at_the_simulator_changes_on_the_page(
    page: Page, sims: DemoSimulators
) -> None:
    await page.until(f"{cell('boiler/setpoint', 1)} === '65'")
    sims.modbus_tcp.units[1].set_value("holding", 20, "float32", 77.25, word_order="little")
    # within the stream's reach, not a poll-interval budget a loaded machine would miss
    await page.until(f"{cell('boiler/setpoint', 1)} === '77.25'")
    assert await page.script(f"return {cell('boiler/setpoint', 3)}") == "good"


async def test_a_write_through_the_page_reaches_the_simulator(
    page: Page, sims: DemoSimulators
) -> None:
    row = '[data-point="boiler/setpoint"]'
    await page.type(f"{row} input", "42.5")
    await page.click(f"{row} button")
    # writes need the write token: the page asks for it once, then sends the write
    await page.until("!document.getElementById('token-form').hidden")
    assert "write token" in await page.text("#token-why")
    await page.type("#token-input", WRITE_TOKEN)
    await page.click("#token-form button")
    unit = sims.modbus_tcp.units[1]
    await page.until(f"{cell('boiler/setpoint', 1)} === '42.5'")
    assert unit.get_value("holding", 20, "float32", word_order="little") == 42.5
    # the cell follows the read-back's stream frame; the output, the PUT's answer after it
    await page.until(f"document.querySelector('{row} output').textContent === 'written: 42.5'")
    # a refused write shows the problem's detail
    await page.type(f"{row} input", "500")
    await page.click(f"{row} button")
    await page.until(f"document.querySelector('{row} output').textContent.startsWith('422')")
    assert "maximum" in await page.text(f"{row} output")
    assert unit.get_value("holding", 20, "float32", word_order="little") == 42.5


async def test_a_silenced_device_turns_offline(page: Page, sims: DemoSimulators) -> None:
    sims.modbus_tcp.silent = True
    try:
        await page.until(f"{status_of('boiler')} === 'offline'")
        error = await page.text('[data-device="boiler"] .error-line')
        assert "did not answer" in error
        await page.until(f"{cell('boiler/temperature', 3)} === 'stale'")
        # "only bad or stale" hides the good rows of the other devices
        await page.click("#only-bad")
        await page.until(
            "document.querySelector('[data-point=\"scale/weight\"]').offsetParent === null"
        )
        assert await page.script(
            "return document.querySelector('[data-point=\"boiler/temperature\"]').offsetParent !== null"
        )
        await page.click("#only-bad")
    finally:
        sims.modbus_tcp.silent = False
    await page.until(f"{status_of('boiler')} === 'online'")


async def test_the_filter_narrows_points_by_name(page: Page) -> None:
    await page.type("#filter", "flow-b/")
    visible = "[...document.querySelectorAll('tr[data-point]')].filter(r => r.offsetParent !== null).map(r => r.dataset.point)"
    await page.until(
        f"JSON.stringify({visible}) === JSON.stringify(['flow-b/flow', 'flow-b/total'])"
    )
    await page.type("#filter", "")
    await page.until(f"{visible}.length > 4")


async def test_the_traffic_view_shows_the_requests_of_a_link(
    page: Page, bridge: RunningServer
) -> None:
    assert not bridge.bridge.traffic.watched
    rows = "[...document.querySelectorAll('#traffic tbody tr')].map(r => [...r.cells].map(c => c.textContent))"
    await page.click("#traffic-section summary")
    await page.until(f"{rows}.some(r => r[1] === 'boiler')", within=30)
    assert bridge.bridge.traffic.watched
    boiler = await page.script(f"return {rows}.find(r => r[1] === 'boiler')")
    assert boiler[2].startswith("unit 1: read ")
    assert boiler[4]
    assert boiler[5]
    # another link: the RTU bus of the two flow meters
    await page.click("#traffic-links button:nth-child(2)")
    await page.until(f"{rows}.some(r => r[1] === 'flow-a') && {rows}.some(r => r[1] === 'flow-b')")
    flow = await page.script(f"return {rows}.find(r => r[1] === 'flow-a')")
    assert flow[2].startswith("unit 3: read ")
    await page.click("#traffic-section summary")
    await page.until("document.getElementById('traffic-state').textContent === 'not capturing'")
    # nobody watches: the links stop capturing
    await eventually(lambda: not bridge.bridge.traffic.watched)
    assert all(poller.link.tap is None for poller in bridge.bridge.pollers)


async def test_a_link_added_by_a_reload_gets_a_tab_in_the_open_traffic_view(
    page: Page, bridge: RunningServer, sims: DemoSimulators, tmp_path: Path
) -> None:
    rows = "[...document.querySelectorAll('#traffic tbody tr')].map(r => r.cells[1].textContent)"
    tabs = "[...document.querySelectorAll('#traffic-links button')].map(b => b.textContent)"
    await page.click("#traffic-section summary")
    await page.until(f"{tabs}.length === 3")
    async with ModbusTcpServer(load_profile(DEMO_PROFILE)) as second_boiler:
        data: dict[str, Any] = {}

        def edit(demo: dict[str, Any]) -> None:
            fast(demo)
            demo["server"] = {"port": 0, "write_token": WRITE_TOKEN}
            added = {**demo["devices"][0], "id": "boiler-2"}
            added["connection"] = {**added["connection"], "port": second_boiler.port}
            demo["devices"].append(added)
            data.update(demo)

        sims.config(edit=edit)
        device_file = tmp_path / "devices.yaml"
        device_file.write_text(yaml.safe_dump(data))
        assert (await reload(bridge.bridge, str(device_file))).added == ["boiler-2"]
        key = f"tcp://127.0.0.1:{second_boiler.port}"
        await page.until(f"{tabs}.includes({key!r})")
        await page.click("#traffic-links button:nth-child(4)")
        await page.until(f"{rows}.length > 0 && {rows}.every(d => d === 'boiler-2')")
        await page.click("#traffic-section summary")
        await page.until("document.getElementById('traffic-state').textContent === 'not capturing'")


async def test_markup_in_a_device_string_stays_text(page: Page) -> None:
    await page.until(f"{cell('boiler/label', 1)} === {XSS!r}")
    assert await page.script("return document.querySelectorAll('#devices img').length") == 0
    errors = [e for e in await page.console_errors() if "Content Security Policy" in e]
    assert errors == []


async def test_with_a_read_token_the_page_asks_for_it_then_works(sims: DemoSimulators) -> None:
    def edit(data: dict[str, Any]) -> None:
        fast(data)
        data["server"] = {"port": 0, "read_token": READ_TOKEN}

    server = await start_server(sims.config(edit=edit))
    try:
        with chromium() as driver:
            page = Page(driver)
            await page.open(server.url + "/")
            await page.until("!document.getElementById('token-form').hidden")
            assert await page.script("return document.querySelectorAll('.device').length") == 0
            await page.type("#token-input", "wrong")
            await page.click("#token-form button")
            await page.until("document.getElementById('token-why').textContent.includes('refused')")
            await page.type("#token-input", READ_TOKEN)
            await page.click("#token-form button")
            for device in DEMO_DEVICES:
                await page.until(f"{status_of(device)} === 'online'")
            # the stream takes the token too (as a WebSocket subprotocol, not in the URL)
            await page.until("document.getElementById('connection').textContent === 'live'")
            await page.until(f"{cell('scale/weight', 3)} === 'good'")
            assert READ_TOKEN not in await page.script("return location.href")
            assert (
                await page.script("return sessionStorage.getItem('device-bridge.token')")
                == READ_TOKEN
            )
    finally:
        await server.close()
