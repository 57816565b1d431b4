"""The one mechanism behind every state machine of the domain: cases (workflow.py),
rectification records (rectification.py) and rewards.

A machine is a table of named rules. Each rule names the states it starts from, the roles
that may take it, why it is refused in any other state, a guard and an effect. ``check``
refuses in one fixed order, before anything changes:

    unknown action → stale version → role → state

then the caller's ``perform`` runs the guard (which parses and checks, changing nothing),
bumps the row's version with ``bump_version`` (compare-and-set, so of two transactions that
read the same version one wins and the other gets a conflict), runs the effect and records
what happened. The table is the documentation: every allowed move is one line of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from service.domain.models import Base, User
from service.platform.errors import ChuishaoError, Conflict, Forbidden, InvalidInput
from service.platform.i18n import N_

MoveT = TypeVar("MoveT")
RuleT = TypeVar("RuleT", bound="Rule[Any]")


class NotAllowedNow(ChuishaoError):
    """The move exists but not from the current state; the rule says why."""

    status = 409
    code = "not_allowed_now"
    message = N_("This step is not possible in the current state.")


@dataclass(frozen=True)
class Rule(Generic[MoveT]):
    sources: frozenset[str]
    refusal: str  # why it is refused in any other state (translatable)
    guard: Callable[[MoveT], None]
    effect: Callable[[MoveT], None]
    roles: tuple[str, ...] = ("reviewer",)  # (): not staff; the caller proves who it is
    refusal_code: str | None = None  # None: NotAllowedNow's own code


class Versioned(Protocol):
    id: Any
    version: int


def states(*names: str) -> frozenset[str]:
    return frozenset(names)


def nothing(move: Any) -> None:
    """A guard or effect with nothing to do."""


def as_int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def check(rules: Mapping[str, RuleT], action: str, state: str, actor: User | None,
          version: Any, current_version: int) -> RuleT:
    """The rule for ``action``, or the refusal, in the machine's fixed order."""
    rule = rules.get(action)
    if rule is None:
        raise InvalidInput(N_("Unknown action."), code="unknown_action")
    expected = as_int(version)
    if expected is None or expected != current_version:
        raise Conflict()
    if rule.roles and (actor is None or not actor.has_role(*rule.roles)):
        raise Forbidden()
    if state not in rule.sources:
        raise NotAllowedNow(rule.refusal, code=rule.refusal_code)
    return rule


def allowed(rules: Mapping[str, Rule[Any]], state: str, user: User) -> list[str]:
    """The actions ``user`` may take from ``state``, in the table's order."""
    return [name for name, rule in rules.items()
            if state in rule.sources and rule.roles and user.has_role(*rule.roles)]


def bump_version(session: Session, model: type[Base], row: Versioned, expected: int) -> None:
    # Compare-and-set in the database: the in-memory check above cannot see a transaction
    # that committed in between.
    result = session.execute(
        update(model).where(model.id == row.id, model.version == expected)  # type: ignore[attr-defined]
        .values(version=expected + 1).execution_options(synchronize_session=False))
    if getattr(result, "rowcount", 0) != 1:
        raise Conflict()
    set_committed_value(row, "version", expected + 1)
