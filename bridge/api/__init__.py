"""The HTTP and WebSocket API of contract §6-7, on aiohttp."""
