"""Screenshots of the page for the README: light, dark, a device offline, a phone, traffic.

Runs the demo's simulators and a bridge in this process, opens the page in the system's
chromium (as the browser tests do, see tests/browser.py) and writes PNG files:

    .venv/bin/python tools/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the browser helper the tests use

from browser import Page, chromium  # noqa: E402

from bridge.demo import DemoSimulators, demo_simulators  # noqa: E402
from bridge.server import RunningServer, start_server  # noqa: E402

BOILER_STATUS = "document.querySelector('[data-device=\"boiler\"] .status').textContent"


async def wait_for(condition: Any, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the demo did not get there in time")
        await asyncio.sleep(0.05)


def scheme(page: Page, which: str) -> Any:
    return page.call(
        page.driver.execute_cdp_cmd,
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": which}]},
    )


async def shoot(page: Page, path: Path) -> None:
    await page.call(page.driver.save_screenshot, str(path))
    print(path)


async def take(sims: DemoSimulators, server: RunningServer, out: Path) -> None:
    bridge = server.bridge
    # some history for the sparklines
    await wait_for(lambda: all(d.polls >= 12 for d in bridge.devices.values()))
    with chromium(1280, 1250) as driver:
        page = Page(driver)
        await page.open(server.url + "/")
        await page.until("document.body.dataset.ready === 'true'")
        await page.until("document.getElementById('connection').textContent === 'live'")
        await scheme(page, "light")
        await shoot(page, out / "page-light.png")
        await scheme(page, "dark")
        await shoot(page, out / "page-dark.png")

        sims.modbus_tcp.silent = True
        await scheme(page, "light")
        await page.until(f"{BOILER_STATUS} === 'offline'")
        await shoot(page, out / "device-offline.png")
        sims.modbus_tcp.silent = False
        await page.until(f"{BOILER_STATUS} === 'online'")

        await page.click("#traffic-section summary")
        await page.click("#traffic-links button:nth-child(2)")
        await page.until("document.querySelectorAll('#traffic tbody tr').length >= 12")
        await page.script("document.getElementById('traffic-section').scrollIntoView()")
        await shoot(page, out / "traffic.png")

    with chromium(390, 844) as driver:
        page = Page(driver)
        await page.open(server.url + "/")
        await page.until("document.getElementById('connection').textContent === 'live'")
        await scheme(page, "dark")
        await shoot(page, out / "phone-dark.png")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    async with demo_simulators() as sims:

        def edit(data: dict[str, Any]) -> None:
            data["server"] = {"port": 0, "write_token": "demo"}
            for device in data["devices"]:
                device["interval"] = 0.5

        server = await start_server(sims.config(edit=edit))
        try:
            await take(sims, server, args.out)
        finally:
            await server.close()


if __name__ == "__main__":
    asyncio.run(main())
