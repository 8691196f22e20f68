"""The operator console: message log search, message detail, replay and resolve, dashboard,
metrics and audit, served by aiohttp on a port of its own (`engine.console.app.start_console`).

Nothing is imported here: importing a console module loads only what it needs.
"""
