"""The central board's pages (``[web] lot = true``), fed by the board's viewing connection: ``/lot`` (every stage),
``/lot.json``, and a phone recording light per stage and set, ``/lot/{stage}/light/{set}``, which
says link lost whenever the stage is unreachable from the centre."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from paho.mqtt.client import MQTTMessage
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..bus import Bus
from ..config import Settings
from .lot import LotBoard
from .takes import TakeLog

ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
PageMaker = Callable[..., HTMLResponse]


class LotPages:
    """The lot board: one viewing connection to the central broker, and its pages."""

    def __init__(self, settings: Settings, bus: Bus, takes: TakeLog, page: PageMaker,
                 denied: Callable[[Request], Response | None]):
        """``bus``: the board's viewing connection (the broker allows one per user, and its persistent
        session keeps the stages' events while the board is down), not started yet; ``takes``: the
        take log, where every stage's events go too (set ``{stage}/{set}``)."""
        self.base = settings.mqtt.base_topic
        self.board = LotBoard(self.base, link_timeout_s=settings.web.link_timeout_s, takes=takes)
        bus.subscribe(f"{self.base}/stage/+/#", self._on_message, qos=1, whole=True)
        bus.on_connect(lambda: self.board.broker(True))
        bus.on_disconnect(lambda: self.board.broker(False))
        self._page, self._denied = page, denied

    def routes(self) -> list[Route]:
        return [Route("/lot", self.lot), Route("/lot.json", self.lot_json),
                Route("/lot/{stage}/light/{set_id}", self.light)]

    def _on_message(self, message: MQTTMessage) -> None:
        self.board.handle(message.topic, bytes(message.payload), retained=bool(message.retain))

    async def lot(self, request: Request) -> Response:
        if (r := self._denied(request)) is not None:
            return r
        snapshot = await run_in_threadpool(self.board.snapshot)  # reads the take log
        return self._page(request, "lot.html", status_code=200 if snapshot["broker"] else 503, lot=snapshot)

    async def lot_json(self, request: Request) -> Response:
        if (r := self._denied(request)) is not None:
            return r
        return JSONResponse(await run_in_threadpool(self.board.snapshot))

    async def light(self, request: Request) -> Response:
        if (r := self._denied(request)) is not None:
            return r
        stage, set_id = request.path_params["stage"], request.path_params["set_id"]
        if not (ID.match(stage) and ID.match(set_id)):
            return PlainTextResponse("a stage or set id is lower-case letters, digits and dashes\n", status_code=404)
        found = await run_in_threadpool(self._find, stage, set_id)
        return self._page(request, "lot_light.html", stage=stage, set_id=set_id, view=found)

    def _find(self, stage: str, set_id: str) -> dict[str, Any]:
        for st in self.board.snapshot()["stages"]:
            if st["stage"] == stage:
                for s in st["sets"]:
                    if s["set"] == set_id:
                        return {"showing": s["showing"], "reachable": st["reachable"], "since": st["since"],
                                "lost": s["lost"]}
        return {"showing": "link-lost", "reachable": False, "since": None, "lost": "unknown"}
