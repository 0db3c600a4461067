"""Running the bridge and its API until asked to stop."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import signal
from collections.abc import Callable, Sequence

from aiohttp import web

from bridge import __version__
from bridge.api.app import make_app
from bridge.config import BridgeConfig, ConfigError
from bridge.http_limits import CappedSite, client_error_logger
from bridge.reload import reload
from bridge.service import Bridge
from bridge.settings import Settings
from bridge.tls import server_context

log = logging.getLogger(__name__)

#: seconds that open HTTP requests get to finish on shutdown
SHUTDOWN_GRACE = 2.0


def is_loopback(host: str) -> bool:
    """Whether a listen address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RunningServer:
    """A bridge with its HTTP site listening; ``close`` stops both."""

    def __init__(self, bridge: Bridge, runner: web.AppRunner, url: str) -> None:
        self.bridge = bridge
        self.runner = runner
        self.url = url
        self.debug_runner: web.AppRunner | None = None
        self.debug_url: str | None = None
        """The page's own listener (``BRIDGE_DEBUG_PORT``), when there is one."""
        self.closed = False

    async def close(self) -> None:
        """Stop accepting requests, close the streams, stop polling and close the links.

        Closing twice is harmless.
        """
        if self.closed:
            return
        self.closed = True
        self.bridge.begin_stop()
        if self.debug_runner is not None:
            await self.debug_runner.cleanup()
        await self.runner.cleanup()
        await self.bridge.stop()


async def start_server(config: BridgeConfig) -> RunningServer:
    """Start polling and serving; returns once the port is bound."""
    settings = config.settings
    for warning in exposure_warnings(settings):
        log.warning(warning)
    bridge = Bridge(config)
    await bridge.start()
    try:
        runner, url = await _listen(make_app(bridge), settings, settings.host, settings.port)
    except OSError:
        await bridge.stop()
        raise
    server = RunningServer(bridge, runner, url + settings.root_path)
    if settings.debug_port is not None:
        try:
            server.debug_runner, debug_url = await _listen(
                make_app(bridge, ui=True), settings, settings.debug_host, settings.debug_port
            )
        except OSError:
            await server.close()
            raise
        server.debug_url = debug_url + settings.root_path
    return server


async def _listen(
    app: web.Application, settings: Settings, host: str, port: int
) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on ``host:port`` with the request limits and TLS; its runner and URL."""
    context = server_context(settings)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_GRACE,
        access_log=None,
        # An idle connection, or one whose request headers have not all come, is closed
        # after this: aiohttp has no separate header timeout.
        keepalive_timeout=settings.request_timeout,
        logger=client_error_logger(),
    )
    await runner.setup()
    site = CappedSite(
        runner, host, port, max_connections=settings.max_connections, ssl_context=context
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    bound = runner.addresses[0][1]
    shown = host if ":" not in host else f"[{host}]"
    scheme = "https" if context is not None else "http"
    return runner, f"{scheme}://{shown}:{bound}"


def exposure_warnings(settings: Settings) -> list[str]:
    """What an operator must hear about a listener others can reach."""
    hosts = [settings.host] + ([settings.debug_host] if settings.debug_port is not None else [])
    warnings = []
    for host in dict.fromkeys(hosts):
        if is_loopback(host):
            continue
        if not settings.read_token:
            warnings.append(
                f"listening on {host} without BRIDGE_READ_TOKEN: anyone who can reach "
                "this address can read every device. Set a read token, or listen on 127.0.0.1."
            )
        if (settings.read_token or settings.write_token) and settings.tls_cert_file is None:
            warnings.append(
                f"listening on {host} with tokens but without TLS: tokens and readings "
                "cross the network in the clear. Set BRIDGE_TLS_CERT_FILE and BRIDGE_TLS_KEY_FILE."
            )
    return warnings


def stop_on_signals(stop: asyncio.Event) -> Callable[[], None]:
    """Set ``stop`` on SIGINT or SIGTERM; returns a function that removes the handlers."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def remove() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return remove


def reload_on_hangup(bridge: Bridge) -> None:
    """Reload the device file on SIGHUP; errors are logged and change nothing."""
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()

    async def hangup() -> None:
        source = bridge.config.source
        if source is None:
            log.warning("SIGHUP: this bridge was not started from a device file")
            return
        log.info("SIGHUP: reloading %s", source)
        try:
            await reload(bridge, source)
        except ConfigError as exc:
            log.error("reload refused, the running configuration stays:\n%s", exc.render())

    def on_signal() -> None:
        task = loop.create_task(hangup())
        running.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(running.discard)

    loop.add_signal_handler(signal.SIGHUP, on_signal)


async def serve_until_stopped(config: BridgeConfig, extra: Sequence[str] = ()) -> None:
    """Serve until SIGINT or SIGTERM, printing where; then close everything."""
    stop = asyncio.Event()
    remove = stop_on_signals(stop)
    server = await start_server(config)
    # What startup made (configuration, models, libraries, the history's columns) lives as
    # long as the process: moved out of the collector's sight, its full collections no
    # longer walk it again and again.
    gc.collect()
    gc.freeze()
    reload_on_hangup(server.bridge)
    try:
        ws_url = server.url.replace("http", "ws", 1)
        print(f"device-bridge {__version__}: {len(config.devices)} device(s)", flush=True)
        print(f"  readings: {server.url}/api/v1/readings", flush=True)
        print(f"  devices:  {server.url}/api/v1/devices", flush=True)
        print(f"  stream:   {ws_url}/api/v1/stream", flush=True)
        if config.settings.ui:
            print(f"  page:     {server.url}/", flush=True)
        if server.debug_url is not None:
            print(f"  debug:    {server.debug_url}/ (the page and traffic)", flush=True)
        for line in extra:
            print(line, flush=True)
        await stop.wait()
        log.info("stopping")
    finally:
        remove()
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await server.close()
