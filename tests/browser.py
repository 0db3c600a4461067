"""A real browser for the page's tests: Debian's chromium and chromedriver, through selenium.

Nothing is downloaded: selenium is given the system's chromedriver and chromium, and its
manager is told to stay offline. Without them the tests fail under CI (``.ci/run``
installs both) and are skipped elsewhere, saying why.

The bridge runs on the test's event loop; selenium blocks, so every browser call goes
through :class:`Page`, which runs it in a thread and keeps the loop (and the bridge) going.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

T = TypeVar("T")


def require_browser() -> None:
    """Fail under CI, skip elsewhere, when the system browser is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    message = f"missing {', '.join(missing)}: apt-get install chromium chromium-driver"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(f"{message} (skipped because CI is not true; in CI this fails)")


@contextmanager
def chromium(width: int = 1280, height: int = 1000) -> Iterator[Any]:
    """A headless chromium driven by selenium, with a fresh profile."""
    os.environ["SE_OFFLINE"] = "true"  # selenium manager must never download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="device-bridge-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in [*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


class Page:
    """Async access to a selenium driver: each call runs in a thread."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def call(self, action: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(action, *args)

    async def open(self, url: str) -> None:
        await self.call(self.driver.get, url)

    async def script(self, source: str, *args: Any) -> Any:
        """Run JavaScript in the page (selenium's own channel, not subject to the page's CSP)."""
        return await self.call(self.driver.execute_script, source, *args)

    async def until(self, source: str, *args: Any, within: float = 10.0) -> Any:
        """Poll a JavaScript expression's value until it is truthy; fail at the deadline."""
        deadline = time.monotonic() + within
        while True:
            result = await self.script(f"return ({source});", *args)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"not true within {within} s: {source} (last: {result!r})")
            await asyncio.sleep(0.02)

    async def text(self, selector: str) -> str:
        found: str = await self.script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            selector,
        )
        return found

    async def click(self, selector: str, within: float = 10.0) -> None:
        """Click an element as a person would (it must be visible).

        While rows arrive the page can move between selenium's scrolling to the element
        and its click, so that the click lands on another; a person would click again,
        and so does this until the deadline.
        """
        from selenium.common.exceptions import ElementClickInterceptedException
        from selenium.webdriver.common.by import By

        deadline = time.monotonic() + within
        while True:
            try:
                await self.call(lambda: self.driver.find_element(By.CSS_SELECTOR, selector).click())
                return
            except ElementClickInterceptedException:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.05)

    async def type(self, selector: str, text: str) -> None:
        """Type into a field as a person would, replacing what it held."""
        from selenium.webdriver.common.by import By

        def send() -> None:
            field = self.driver.find_element(By.CSS_SELECTOR, selector)
            field.clear()
            field.send_keys(text)

        await self.call(send)

    async def console_errors(self) -> list[str]:
        entries = await self.call(self.driver.get_log, "browser")
        return [e["message"] for e in entries if e["level"] == "SEVERE"]
