"""The HTTP and WebSocket API (README, "The API"), on aiohttp."""
