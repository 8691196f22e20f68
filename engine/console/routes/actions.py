"""What operators do: replay, resolve, hold and release a delivery; replay or resolve a
message; re-map a message with today's config; replay the dead letters a filter lists.

Each answers a browser with a redirect to the page it came from (``?done=…&n=…`` names the
notice) and a bearer-token caller with JSON. Deliveries made due wake the delivery loop.
"""

from __future__ import annotations

from aiohttp import web

from engine.console import remap
from engine.console.auth import Principal
from engine.console.context import Console, log, number
from engine.store import operator as actions
from engine.store.console_dead_letters import dead_letter_groups


class Actions:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def delivery(self, request: web.Request) -> web.Response:
        c = self.console
        principal = c.need(request, "operator")
        form = await request.post()
        delivery_id = number(request.match_info["id"])
        back = number(str(form.get("back", "")))
        verb = request.match_info["verb"]
        comment = str(form.get("comment", "")) or None
        if delivery_id is None or back is None:
            raise web.HTTPBadRequest(text="bad delivery or message id")
        if verb == "replay":
            changed = await actions.replay_delivery(c.store, principal, delivery_id, comment)
        elif verb == "resolve":
            if not comment:
                raise web.HTTPBadRequest(text="a resolution needs a comment")
            changed = await actions.resolve_delivery(c.store, principal, delivery_id, comment)
        elif verb == "hold":
            changed = await actions.hold_delivery(c.store, principal, delivery_id, comment)
        else:
            changed = await actions.release_delivery(c.store, principal, delivery_id, comment)
        return self._after(principal, verb, changed, f"/messages/{back}")

    async def message(self, request: web.Request) -> web.Response:
        c = self.console
        principal = c.need(request, "operator")
        form = await request.post()
        message_id = number(request.match_info["id"])
        comment = str(form.get("comment", "")) or None
        if message_id is None:
            raise web.HTTPBadRequest(text="bad message id")
        verb = request.match_info["verb"]
        if verb == "replay":
            changed = await actions.replay_message(c.store, principal, message_id, comment)
        else:
            if not comment:
                raise web.HTTPBadRequest(text="a resolution needs a comment")
            changed = await actions.resolve_message(c.store, principal, message_id, comment)
        return self._after(principal, verb, changed, f"/messages/{message_id}")

    async def remap(self, request: web.Request) -> web.Response:
        """Re-map the stored message with today's config and route it (see `remap`)."""
        c = self.console
        principal = c.need(request, "operator")
        form = await request.post()
        message_id = number(request.match_info["id"])
        if message_id is None:
            raise web.HTTPBadRequest(text="bad message id")
        if c.engine_config is None:
            raise web.HTTPServiceUnavailable(text="re-mapping needs the engine's config")
        result = await remap.remap_message(
            c.store, principal, message_id, c.engine_config, str(form.get("comment", "")) or None
        )
        if result.outcome == "missing":
            raise web.HTTPNotFound(text="no such message")
        log.info(
            "console.action",
            user=principal.name,
            action="remap",
            message=message_id,
            outcome=result.outcome,
            changed=result.count,
            deliveries=list(result.delivery_ids[:50]),
        )
        if result.count:
            c.on_replay()
        if principal.via == "token":
            return web.json_response(_remap_json(result))
        done = {"remapped": "remap" if result.count else "remap_none"}.get(
            result.outcome, f"remap_{result.outcome}"
        )
        raise web.HTTPSeeOther(f"/messages/{message_id}?done={done}&n={result.count}")

    async def bulk_replay(self, request: web.Request) -> web.Response:
        c = self.console
        principal = c.need(request, "operator")
        form = await request.post()
        changed = await actions.replay_dead_letters(
            c.store,
            principal,
            destination=str(form.get("destination", "")) or None,
            source=str(form.get("source", "")) or None,
            up_to=number(str(form.get("up_to", ""))),
            limit=c.config.bulk_limit,
            reason=str(form.get("comment", "")) or None,
        )
        return self._after(principal, "replay", changed, "/dead-letters")

    async def group_replay(self, request: web.Request) -> web.Response:
        """Replay one group of the dead letters grouped by error (destination and normalised
        reason), none newer than the operator saw listed: the bulk replay, on the group's ids."""
        c = self.console
        principal = c.need(request, "operator")
        form = await request.post()
        destination = str(form.get("destination", ""))
        up_to = number(str(form.get("up_to", "")))
        found = await dead_letter_groups(c.store, destination=destination or None, up_to=up_to)
        wanted = str(form.get("reason", ""))
        ids = next(
            (
                g.delivery_ids
                for g in found.groups
                if g.destination == destination and g.reason == wanted
            ),
            (),
        )
        changed = await actions.replay_dead_letters(
            c.store,
            principal,
            destination=destination or None,
            source=None,
            up_to=up_to,
            limit=c.config.bulk_limit,
            reason=str(form.get("comment", "")) or None,
            only=ids,
        )
        return self._after(principal, "replay", changed, "/dead-letters")

    def _after(
        self, principal: Principal, verb: str, changed: actions.Changed, back: str
    ) -> web.Response:
        log.info(
            "console.action",
            user=principal.name,
            action=verb,
            changed=changed.count,
            deliveries=list(changed.delivery_ids[:50]),
        )
        if changed.count and verb in ("replay", "release"):
            self.console.on_replay()
        done = verb if changed.count else "none"
        if principal.via == "token":
            return web.json_response(
                {"changed": changed.count, "deliveries": list(changed.delivery_ids)}
            )
        raise web.HTTPSeeOther(f"{back}?done={done}&n={changed.count}")


def _remap_json(result: remap.Remapped) -> dict[str, object]:
    return {
        "outcome": result.outcome,
        "problem": result.problem,
        "changed": result.count,
        "deliveries": list(result.delivery_ids),
        "created": list(result.created),
        "requeued": list(result.requeued),
        "pending": list(result.updated),
        "delivered": list(result.delivered),
        "skipped": list(result.skipped),
        "unrouted": list(result.unrouted),
    }
