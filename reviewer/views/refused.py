"""A refused change in the console: roll back, put it on the record, show the page again.

Every view that answers a refusal with its page (the form as typed, the reason beside it) does
the same three things in the same order: the request's transaction is rolled back, so nothing
of the attempt stays; the refusal goes on the audit trail in a transaction of its own
(``audit.record_refusal``), so it survives that rollback; and the reason is shown in the
page's language.
"""

from __future__ import annotations

from starlette.requests import Request

from reviewer.auth import current_user
from service.domain import audit
from service.platform.db import get_session
from service.platform.errors import ChuishaoError
from service.platform.templating import translator


def refused(request: Request, action: str, target: str, error: ChuishaoError, *,
            key: str = "code") -> str:
    """Roll back and record the refusal of ``action`` on ``target``; the message to show.

    ``key`` names the audit detail that carries the refusal's code (the administration pages
    have always called it "reason")."""
    get_session(request).rollback()
    audit.record_refusal(request.app.state.database, action[:64],
                         actor_id=current_user(request).id, target=target[:100],
                         details={key: error.code})
    return refusal_text(request, error)


def refusal_text(request: Request, error: ChuishaoError) -> str:
    """The refusal's message in the page's language."""
    return translator(request)(error.message, **error.params)
