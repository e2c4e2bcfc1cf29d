"""The aiohttp apps (grand-user gateway, editor API), the CLI and the editor page."""
