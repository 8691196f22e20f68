"""The engine's small HTTP port: `/healthz` (the process is alive) and `/readyz` (it can work).

Ready means: connected to the broker, every source consumer attached, the store answering.
A container orchestrator restarts on failed liveness and stops routing on failed readiness.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

Readiness = Callable[[], Awaitable[dict[str, bool]]]


def health_app(readiness: Readiness, extra: Sequence[web.RouteDef] = ()) -> web.Application:
    """The app behind `http.port`; `extra` adds the notification links and follow-up list."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_request: web.Request) -> web.Response:
        checks = await readiness()
        ready = all(checks.values())
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.add_routes(list(extra))
    return app


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving; return the runner (to stop it) and the bound port (port 0 picks one)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)
