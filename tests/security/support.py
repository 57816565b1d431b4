"""Shared helpers of the security suite: routes found at run time, a world with one of
everything, path parameters filled from it, and snapshots of every table.

Routes are never listed by hand: new console routes keep arriving, and a
route nobody listed is exactly the one a security test must not miss.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

import crypto
from service.domain import (
    invitations,
    rectification_cases,
    reward_policies,
    reward_records,
    workflow,
)
from service.domain.installation import get_installation
from service.domain.models import Base, Case, HazardCriterion, StoredFile
from service.platform.settings import Settings
from tests.console import sign_in
from tests.factories import Reviewer, World, api_client, make_reviewer, make_world

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
ROLES = ("reviewer", "approver", "auditor", "finance", "admin")
REPORT = {"v": 1, "unit": "某化工厂", "location": "罐区", "category": "hazard",
          "description": "液氨管道泄漏无人处理。", "seen_at": "", "insider": "yes",
          "language": "zh_CN"}
JSON_ACCEPT = {"Accept": "application/json"}


# ---------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class RouteInfo:
    path: str            # full path template, e.g. /console/cases/{case_id}
    methods: frozenset[str]
    endpoint: Any
    params: dict[str, str]  # name -> convertor class name ("str", "int", ...)
    console: bool

    @property
    def required_roles(self) -> tuple[str, ...] | None:
        """The roles of a @require_roles view; None for a view anyone may reach."""
        roles = getattr(self.endpoint, "required_roles", None)
        return None if roles is None else tuple(roles)

    @property
    def unsafe_methods(self) -> list[str]:
        return sorted(self.methods - SAFE)


def _convertor_name(convertor: Any) -> str:
    return type(convertor).__name__.removesuffix("Convertor").lower()


def routes_of(app: Starlette) -> list[RouteInfo]:
    """Every route of the app and of the console sub-app, with full paths."""
    found: list[RouteInfo] = []

    def walk(routes: list[Any], prefix: str, console: bool) -> None:
        for route in routes:
            if isinstance(route, Mount):
                inner = getattr(route.app, "routes", None)
                if inner is not None and route.path != "/static":
                    walk(inner, prefix + route.path, console or route.path == "/console")
            elif isinstance(route, Route):
                found.append(RouteInfo(
                    prefix + route.path_format, frozenset(route.methods or {"GET"}),
                    route.endpoint,
                    {name: _convertor_name(c) for name, c in route.param_convertors.items()},
                    console))

    walk(list(app.routes), "", False)
    return found


def api_routes(app: Starlette) -> list[RouteInfo]:
    return [r for r in routes_of(app) if r.path.startswith("/api/")]


def console_routes(app: Starlette) -> list[RouteInfo]:
    return [r for r in routes_of(app) if r.console]


def fill(path: str, values: dict[str, str], params: dict[str, str] | None = None) -> str:
    """Put real values into a path template; unknown names get a harmless well-formed value."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        if params and params.get(name) == "int":
            return "1"
        return "0" * 32
    return re.sub(r"{([^}:]+)(?::[^}]+)?}", one, path)


# ---------------------------------------------------------------------------- state


def model_tables() -> list[Any]:
    return list(Base.metadata.sorted_tables)


def counts(session: Session, exclude: tuple[str, ...] = ()) -> dict[str, int]:
    """Row count of every table of the schema."""
    session.expire_all()
    return {table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in model_tables() if table.name not in exclude}


def snapshot(session: Session, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """A digest of every row of every table: any insert, update or delete changes it."""
    session.expire_all()
    digests = {}
    for table in model_tables():
        if table.name in exclude:
            continue
        rows = sorted(repr(tuple(row)) for row in session.execute(select(table)))
        digests[table.name] = hashlib.sha256("\n".join(rows).encode("utf-8", "replace")
                                             ).hexdigest()
    return digests


def text_columns(session: Session) -> Iterator[tuple[str, str, Any]]:
    """(table, column, value) of every text or JSON value stored anywhere."""
    from sqlalchemy import JSON, String, Text

    for table in model_tables():
        wanted = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
        if not wanted:
            continue
        for row in session.execute(select(*wanted)):
            for column, value in zip(wanted, row, strict=True):
                if value is not None:
                    yield table.name, column.name, value


# ---------------------------------------------------------------------------- a full world


@dataclass
class Rich:
    """One of everything a console page can be about, and a user of every role."""

    world: World
    users: dict[str, Reviewer]          # role -> a user with only that role (on the channel)
    allrounder: Reviewer                # every role at once
    case: Case                          # verified, with a file, a reward and a rectification
    receipt: str
    file_id: str
    reward_id: str
    record_id: int
    policy_row_id: int
    invitation_token: str
    export_id: str = ""
    values: dict[str, str] = field(default_factory=dict)


def build_rich(client: TestClient, session: Session, settings: Settings) -> Rich:
    world = make_world(session, settings, reviewers=1)
    users = {"reviewer": world.reviewers[0]}
    for role in ROLES[1:]:
        users[role] = make_reviewer(session, f"{role}1",
                                    world.channel if role in ("approver", "auditor") else None,
                                    roles=role)
    allrounder = make_reviewer(session, "allrounder", world.channel, roles=" ".join(ROLES))
    session.commit()
    from service.domain.sealing import PlainFile

    evidence = bytes(range(251)) * 40
    receipt = api_client(client).submit("acme", REPORT, files=[PlainFile(
        name="现场.bin", type="application/octet-stream", size=len(evidence),
        read=lambda: [evidence])])
    keys = crypto.derive_receipt(receipt, get_installation(session).salt,
                                 settings.receipt_iterations)
    case = session.scalar(select(Case).where(Case.lookup_hash == keys.lookup_hash.hex()))
    assert case is not None
    reviewer = users["reviewer"].user
    criterion = session.scalar(select(HazardCriterion.id).limit(1))
    for action, params in (("accept", {}), ("grade", {"grade": "major",
                                                      "criterion_id": criterion}),
                           ("start_verification", {}), ("verify", {"result": "true"})):
        workflow.perform(session, settings, case, reviewer, action, version=case.version,
                         params=params)
    reward_policies.ensure_shipped(session)
    from service.domain.models.rewards import RewardPolicyVersion

    policy = session.scalar(select(RewardPolicyVersion).where(
        RewardPolicyVersion.policy_id == "national-2018"))
    assert policy is not None
    reward = reward_records.propose(session, case, reviewer, policy.id, {"fine": "200000"})
    reward_records.approve(session, reward, users["approver"].user, reward.version)
    record = rectification_cases.open_record(session, settings, case, reviewer,
                                             {"description": "储罐阀门更换"})
    _, token = invitations.create_invitation(session, roles=["reviewer"], hours=2)
    session.commit()
    file_id = session.scalar(select(StoredFile.id).where(StoredFile.case_id == case.id))
    assert file_id is not None
    rich = Rich(world, users, allrounder, case, receipt, file_id, reward.id, record.id,
                policy.id, token)
    # An export of the reward ledger, made by the auditor, so its manifest exists.
    csrf = sign_in(client, session, settings, users["auditor"].user)
    made = client.post("/console/rewards/export", data={"csrf_token": csrf, "format": "csv"})
    assert made.status_code == 200, made.text[:300]
    rich.export_id = made.headers["x-chuishao-export"]
    client.cookies.clear()
    rich.values = {
        "case_id": case.id, "file_id": file_id, "index": "0", "token": token,
        "user_id": str(reviewer.id), "channel_id": str(world.channel.id),
        "reward_id": reward.id, "export_id": rich.export_id, "row_id": str(policy.id),
        "record_id": str(record.id), "session_id": "0" * 64, "action": "accept",
    }
    return rich


def followup_token(client: TestClient, session: Session, settings: Settings,
                   receipt: str) -> str:
    keys = crypto.derive_receipt(receipt, get_installation(session).salt,
                                 settings.receipt_iterations)
    response = client.post("/api/v1/followup/session", json={
        "lookup_secret": crypto.b64u_encode(keys.lookup_secret),
        "pow": api_client(client).stamp()})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


# ---------------------------------------------------------------------------- HTML


URL_ATTRIBUTES = {"src", "href", "action", "formaction", "poster", "data", "srcset",
                  "xlink:href", "background", "cite", "manifest", "ping", "longdesc"}
# Links that open an app on the device and load nothing (the TOTP enrolment link).
ALLOWED_SCHEMES = {"otpauth"}


class PageAudit(HTMLParser):
    """Finds what a strict CSP would block or what could reach another origin."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {name.lower(): (value or "") for name, value in attrs}
        if tag == "script" and "src" not in named and \
                named.get("type", "").lower() != "application/json":
            self.problems.append(f"inline <script> {named}")
        if tag == "style":
            self.problems.append("inline <style> element")
        if tag == "meta" and named.get("http-equiv", "").lower() == "refresh":
            self.problems.append("meta refresh")
        for name, value in named.items():
            if name.startswith("on"):
                self.problems.append(f"event handler {name}= on <{tag}>")
            if name == "style":
                self.problems.append(f"style= on <{tag}>")
            if name in URL_ATTRIBUTES:
                for url in (value.split(",") if name == "srcset" else [value]):
                    problem = external(url.strip().split(" ")[0])
                    if problem:
                        self.problems.append(f"<{tag} {name}={value!r}>: {problem}")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def external(url: str) -> str:
    """Why ``url`` would leave the page's origin (or run code), or '' if it stays."""
    if not url:
        return ""
    parts = urlsplit(url)
    if url.startswith("//") or parts.netloc:
        return "another origin"
    scheme = parts.scheme.lower()
    if scheme and scheme not in ALLOWED_SCHEMES:
        return f"scheme {scheme}:"
    return ""


def page_problems(html: str) -> list[str]:
    audit = PageAudit()
    audit.feed(html)
    audit.close()
    return audit.problems


# ---------------------------------------------------------------------------- addresses


IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6 = re.compile(r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}"
                  r"(?![0-9A-Za-z:])|(?<![0-9A-Za-z:])::1(?![0-9A-Za-z:])")


def addresses_in(value: str) -> list[str]:
    found = IPV4.findall(value)
    # Times such as 12:30:45 look like IPv6 to a loose pattern; an address needs a hex letter,
    # "::" or more than three groups.
    for match in IPV6.findall(value):
        if "::" in match or re.search(r"[A-Fa-f]", match) or match.count(":") > 3:
            found.append(match)
    return found


def sql_quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def raw_count(session: Session, table: str) -> int:
    return int(session.execute(text(f"SELECT count(*) FROM {sql_quote_ident(table)}")
                               ).scalar() or 0)
