"""The public hazard board (/board): anonymised outcomes of a channel that opted in.

Works without JavaScript; the domain is in service/domain/board.py. Nothing here reads a case's
sealed data or anything about a reporter.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.domain import board, rectification_facts, workflow
from service.domain.rewards.money import format_yuan
from service.platform.db import get_session
from service.platform.errors import ChuishaoError
from service.platform.templating import render, translator


async def board_page(request: Request) -> Response:
    session = get_session(request)
    on = rectification_facts.today()
    channels = board.public_channels(session)
    slug = str(request.query_params.get("channel") or "")[:64]
    period = str(request.query_params.get("period") or "")[:10]
    context: dict[str, Any] = {
        "channels": channels, "board": None, "period": period or str(on.year),
        "periods": board.period_choices(on), "grades": workflow.GRADES,
        "yuan": format_yuan, "error": None}
    status = 200
    try:
        channel = board.find_channel(session, slug) if slug else (
            channels[0] if len(channels) == 1 else None)
        if channel is not None:
            weeks = board.parse_period(period, on)
            context["board"] = board.board(session, channel, weeks, on)
            context["period"] = weeks.label
    except ChuishaoError as exc:
        context["error"] = translator(request)(exc.message, **exc.params)
        status = exc.status
    return render(request, "public/board.html", context, status=status)
