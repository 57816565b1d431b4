"""Console views: a printable poster for each channel (role ``admin`` only).

The page shows what the poster will say (address, fingerprint, reward sentence); the file is
drawn off the event loop, since laying out and subsetting the CJK font takes a second or more.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from reviewer.auth import require_roles
from service.domain import channels, poster, reward_policies
from service.domain.models import Channel
from service.platform.db import get_session
from service.platform.i18n import LANGUAGES
from service.platform.templating import language, render


def _channel(request: Request) -> Channel:
    return channels.get_channel(get_session(request), int(request.path_params["channel_id"]))


def _choice(request: Request, name: str, default: str) -> str:
    return str(request.query_params.get(name, default))[:64]


@require_roles("admin")
async def poster_page(request: Request) -> Response:
    session = get_session(request)
    channel = _channel(request)
    lang = _choice(request, "lang", language(request))
    policy_id = _choice(request, "policy", "") or None
    content = poster.gather(session, request.app.state.settings, channel, lang,
                            request.app.state.catalogs.gettext(lang), policy_id=policy_id)
    return render(request, "reviewer/admin_poster.html", {
        "channel": channel, "content": content, "poster_lang": lang,
        "sizes": list(poster.SIZES), "formats": list(poster.FORMATS), "languages": LANGUAGES,
        "policies": reward_policies.policy_rows(session, active_only=True),
        "chosen_policy": poster.choose_policy(session, channel, policy_id),
        "local_address": poster.local_address(request.app.state.settings),
        "local_address_text": poster.LOCAL_ADDRESS})


@require_roles("admin")
async def poster_file(request: Request) -> Response:
    session = get_session(request)
    channel = _channel(request)
    size = _choice(request, "size", "a4")
    fmt = _choice(request, "format", "pdf")
    lang = _choice(request, "lang", "zh_CN")
    poster.check_choice(size, fmt)
    content = poster.gather(session, request.app.state.settings, channel, lang,
                            request.app.state.catalogs.gettext(lang),
                            policy_id=_choice(request, "policy", "") or None)
    made = await run_in_threadpool(poster.render_poster, content, channel.slug, size=size,
                                   fmt=fmt)
    return Response(made.data, media_type=made.media_type, headers={
        "Content-Disposition": f'attachment; filename="{made.filename}"',
        "Cache-Control": "no-store"})


ROUTES: list[BaseRoute] = [
    Route("/admin/channels/{channel_id:int}/poster", poster_page, name="admin_poster"),
    Route("/admin/channels/{channel_id:int}/poster/file", poster_file),
]
