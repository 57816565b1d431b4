"""The operator's command line: ``chuishao init | migrate | channel | invite | scope | submit |
purge | notify | recover | recovery | secret-key | serve | audit | export | poster |
reward``
(``chuishao --help``).

Each command imports what it needs inside its own function, the one place in the tree that
does: ``chuishao submit`` and ``chuishao audit verify`` must start fast and must not load the
web application, and ``migrate`` must run before any module touches the schema.

Longer than 500 lines because it is one parser: each command is a short function over
the domain.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import crypto
from service.domain import notify
from service.platform import localtime
from service.platform.db import Database
from service.platform.settings import Settings

if TYPE_CHECKING:
    import uvicorn


def _database(settings: Settings) -> Database:
    """The database, refused with a clear line (exit 2) when its schema is not this code's:
    a command run before `chuishao migrate` would otherwise stop on a missing column."""
    from service.platform import migrate

    current, head = migrate.current_revisions(settings.database), migrate.head_revision()
    if current != (head,):
        print("refused: the database is not at this version's schema "
              f"({', '.join(current) or 'empty'}; this version needs {head}); "
              "run `chuishao migrate` first", file=sys.stderr)
        raise SystemExit(2)
    return Database.from_url(settings.database)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from service.domain import housekeeping
    from service.platform import migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        plan = migrate.prepare(settings.database, settings.data_dir / "backups")
    except migrate.MigrationRefused as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if plan.backup is not None:
        print(f"backup of the database before the upgrade: {plan.backup}")
    migrate.upgrade(settings.database)
    database = _database(settings)
    try:
        # Once per SQLite file: deleted drafts must be able to shrink it (housekeeping.py).
        if housekeeping.enable_incremental_vacuum(database):
            print("SQLite file converted to incremental auto-vacuum")
        housekeeping.refresh_statistics(database)
    finally:
        database.dispose()
    print("database is at the newest schema")
    return 0


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    from service.domain import installation

    database = _database(settings)
    try:
        with database.session() as session:
            if installation.get_installation(session) is not None:
                if args.if_needed:
                    return 0
                print("already initialised; nothing changed", file=sys.stderr)
                return 1
            done = installation.initialise(session, settings)
    finally:
        database.dispose()
    print("Installation initialised.")
    print()
    print("RECOVERY SECRET — shown once, never stored. Write it down and keep it offline:")
    print()
    print("    " + done.recovery_secret)
    print()
    print("RECOVERY SECRET, X-WING PART (post-quantum, protocol v2) — also shown once; keep it")
    print("with the first:")
    print()
    print("    " + done.recovery_xwing_secret)
    print()
    print("With them, `chuishao recover` can re-grant access to cases when every reviewer of a")
    print("channel has lost their password. Without them, such cases cannot be opened again.")
    print()
    public = done.installation.signing_public_key
    print("SIGNING KEY — exports and audit heads are signed with it. Its fingerprint:")
    print()
    print("    " + crypto.signing_fingerprint(public))
    print()
    print(f"Give the auditor a copy of {installation.public_key_path(settings)} to keep: "
          "`chuishao export")
    print("verify --key-file` checks exports against that copy, never against the database.")
    return 0


def cmd_recovery(settings: Settings, args: argparse.Namespace) -> int:
    """``recovery add-pq``: the X-Wing part for an installation made before protocol v2."""
    from service.domain import audit, installation

    database = _database(settings)
    try:
        with database.session() as session:
            try:
                secret = installation.add_recovery_xwing(session)
            except LookupError:
                print("refused: run `chuishao init` first", file=sys.stderr)
                return 2
            except installation.AlreadyPostQuantum:
                print("refused: the recovery key has an X-Wing part already; nothing changed",
                      file=sys.stderr)
                return 1
            audit.append(session, "recovery.add_pq", target="installation")
    finally:
        database.dispose()
    print("The recovery key now has an X-Wing part: new reports seal their recovery slot with")
    print("protocol v2. Cases made before keep their v1 recovery slot.")
    print()
    print("RECOVERY SECRET, X-WING PART — shown once, never stored. Keep it offline with the")
    print("first recovery secret; `chuishao recover` needs it for cases sealed from now on:")
    print()
    print("    " + secret)
    return 0


def cmd_secret_key(settings: Settings, args: argparse.Namespace) -> int:
    """``secret-key adopt``: this machine's secret key becomes the installation's, after it
    was replaced on purpose on every instance (instances with another key refuse to start)."""
    from service.domain import audit, installation
    from service.platform.settings import resolve_secret_key

    database = _database(settings)
    try:
        with database.write_session() as session:
            try:
                changed = installation.adopt_secret_key(session, resolve_secret_key(settings))
            except LookupError:
                print("refused: run `chuishao init` first", file=sys.stderr)
                return 2
            if changed:
                audit.append(session, "secret_key.adopt", target="installation")
    finally:
        database.dispose()
    print("This secret key is the installation's now; instances started with another are "
          "refused." if changed else "This secret key is the installation's already; nothing "
          "changed.")
    return 0


def cmd_channel(settings: Settings, args: argparse.Namespace) -> int:
    from service.domain import channels
    from service.platform.errors import ChuishaoError

    database = _database(settings)
    try:
        with database.session() as session:
            if args.action == "add":
                try:
                    channel = channels.add_channel(
                        session, slug=args.slug, kind=args.kind, name_zh=args.name_zh,
                        name_en=args.name_en or "")
                except ChuishaoError as exc:
                    print(f"refused: {exc.message}", file=sys.stderr)
                    return 2
                print(f"channel {channel.slug} added (id {channel.id})")
            else:
                for channel in channels.list_channels(session):
                    state = "active" if channel.active else "inactive"
                    print(f"{channel.id}\t{channel.slug}\t{channel.kind}\t{state}\t"
                          f"{channel.name_zh}\t{channel.name_en}")
    finally:
        database.dispose()
    return 0


def _invite(settings: Settings, session_roles: list[str], channel_slug: str | None,
            hours: int, scope_slugs: Sequence[str] = ()) -> str:
    from service.domain import invitations
    from service.domain.models import Channel

    def find(session: Session, slug: str) -> Channel:
        channel = session.scalar(select(Channel).where(Channel.slug == slug))
        if channel is None:
            raise SystemExit(f"no channel {slug!r}")
        return channel

    database = _database(settings)
    try:
        with database.session() as session:
            channel = find(session, channel_slug) if channel_slug else None
            scope = [find(session, slug) for slug in scope_slugs]
            _, token = invitations.create_invitation(
                session, roles=session_roles, hours=hours, channel=channel, scope=scope)
    finally:
        database.dispose()
    return f"{settings.base_url.rstrip('/')}/console/invite/{token}"


def cmd_invite(settings: Settings, args: argparse.Namespace) -> int:
    from service.platform.errors import ChuishaoError

    hours = args.hours or settings.invitation_hours
    try:
        link = _invite(settings, args.role, args.channel, hours, args.scope or ())
    except ChuishaoError as exc:
        print(f"refused: {_text(settings, exc)}", file=sys.stderr)
        return 2
    print(f"One-time invitation ({', '.join(args.role)}), valid {hours} h:")
    print(link)
    return 0


def _text(settings: Settings, error: Exception) -> str:
    """A refusal in the installation's default language (CHUISHAO_DEFAULT_LANGUAGE)."""
    from service.platform import i18n

    message = getattr(error, "message", str(error))
    params = getattr(error, "params", {}) or {}
    return str(i18n.Catalogs.load().gettext(settings.default_language)(message, **params))


def cmd_scope(settings: Settings, args: argparse.Namespace) -> int:
    """Show or change the channels whose records an account may see (any role; no keys)."""
    from service.domain import audit, recipients
    from service.domain.models import Channel, User
    from service.platform.errors import ChuishaoError, NotFound
    from service.platform.i18n import N_

    database = _database(settings)
    try:
        with database.session() as session:
            if args.action == "list":
                for row in recipients.user_rows(session, v2_only=settings.require_v2):
                    receives = ",".join(c.slug for c in row.receives) or "-"
                    scope = ",".join(c.slug for c in row.scope) or "-"
                    state = "receives" if row.may_receive else "receives-no-reports"
                    # classical: no X-Wing pair yet; held back: left out while v2 is required
                    held = ",".join(c.slug for c in row.held_back) or "-"
                    key = "classical" if row.classical else "post-quantum"
                    print(f"{row.user.username}\t{row.user.roles}\t{state}\t"
                          f"receives:{receives}\tscope:{scope}\tkey:{key}\theld-back:{held}")
                return 0
            user = session.scalar(select(User).where(User.username == args.username))
            channel = session.scalar(select(Channel).where(Channel.slug == args.channel))
            try:
                if user is None or channel is None:
                    raise NotFound(N_("There is no account or no channel with this name."))
                if args.action == "add":
                    added = recipients.add_scope_row(session, channel.id, user.id)
                    audit.append(session, "admin.scope.add", target=f"user:{user.id}",
                                 details={"username": user.username, "channel_id": channel.id,
                                          "slug": channel.slug, "added": added,
                                          "via": "command line"})
                else:
                    if not recipients.remove_scope_row(session, channel.id, user.id):
                        raise NotFound(N_("This channel is not in this account's scope."))
                    audit.append(session, "admin.scope.remove", target=f"user:{user.id}",
                                 details={"username": user.username, "channel_id": channel.id,
                                          "slug": channel.slug, "via": "command line"})
            except ChuishaoError as exc:
                session.rollback()
                print(f"refused: {_text(settings, exc)}", file=sys.stderr)
                return 2
            done = "added to" if args.action == "add" else "removed from"
            print(f"{user.username}: {channel.slug} {done} scope")
    finally:
        database.dispose()
    return 0


def _has_admin(settings: Settings) -> bool:
    from service.domain.models import User

    database = _database(settings)
    try:
        with database.session() as session:
            users = session.scalars(select(User.roles).where(User.active.is_(True))).all()
    finally:
        database.dispose()
    return any("admin" in roles.split() for roles in users)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from service.app import create_app
    from service.platform import logs

    logs.configure(settings.log_level, granularity_seconds=settings.time_granularity_seconds)
    refused = refuse_workers(settings, args.workers)
    if refused:
        print(refused, file=sys.stderr)
        return 2
    if args.first_admin_link and not _has_admin(settings):
        link = _invite(settings, ["admin"], None, settings.invitation_hours)
        print()
        print("No administrator yet. Open this one-time link to create the first account:")
        print(f"    {link}")
        print()
    options = {
        "host": settings.host, "port": settings.port,
        "access_log": False,  # its lines carry client addresses; ours do not
        "proxy_headers": False, "server_header": False,
        "log_config": logs.UVICORN_LOG_CONFIG, "log_level": settings.log_level.lower(),
    }
    if args.workers > 1:
        # Each worker builds its own app from the same environment (create_worker_app).
        config = uvicorn.Config("service.app:create_worker_app", factory=True,
                                workers=args.workers, **options)  # type: ignore[arg-type]
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return 0
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, **options))  # type: ignore[arg-type]
    return _serve_until_signalled(server)


def refuse_workers(settings: Settings, workers: int) -> str | None:
    """Why ``workers`` processes cannot serve this installation, or None."""
    if workers < 1:
        return "refused: --workers must be at least 1"
    if workers == 1:
        return None
    if make_url(settings.database).get_backend_name() != "postgresql":
        return ("refused: SQLite serves one process only; --workers N needs PostgreSQL "
                "(set CHUISHAO_DATABASE_URL=postgresql://...; see docs/OPERATIONS.md)")
    if not str(settings.secret_key) and not settings.secret_key_path.exists():
        # Each worker would generate a key of its own: sessions, CSRF tokens and follow-up
        # capabilities signed by one would be refused by the others.
        return ("refused: several workers need one secret key; set CHUISHAO_SECRET_KEY "
                "(the same on every machine) or start once with one worker so "
                f"{settings.secret_key_path} exists")
    return None


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _serve_until_signalled(server: uvicorn.Server) -> int:
    """Run uvicorn; a shutdown asked for by SIGTERM or SIGINT that completed is a success.

    Uvicorn shuts down gracefully on those signals and then raises the signal again against
    the handler it found, which by default kills the process (status 143 for SIGTERM), so a
    service manager would report a clean stop as a failure. The handler it finds is ours, and
    does nothing: the shutdown has already happened.
    """
    previous = {sig: signal.signal(sig, lambda _number, _frame: None) for sig in STOP_SIGNALS}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        return 3  # the application did not start (uvicorn's own status for this)
    return 0


def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    """Seal a report on this machine and send it: a real client of the public API."""
    from service import client as api
    from service.domain.metadata import MetadataError

    text = Path(args.file).read_text(encoding="utf-8") if args.file else sys.stdin.read()
    if not text.strip():
        print("refused: the report text is empty", file=sys.stderr)
        return 2
    try:
        files = [api.plain_file(Path(name), number, keep_name=args.keep_names)
                 for number, name in enumerate(args.attachments, start=1)]
    except (OSError, MetadataError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    report = {"v": 1, "unit": args.unit, "location": args.location or "",
              "category": args.category, "description": text.strip(), "seen_at": "",
              "insider": "", "language": "zh_CN"}
    for given, plain in zip(args.attachments, files, strict=True):
        note = ", ".join(plain.removed) if plain.removed else "nothing to remove"
        if not plain.cleaned and not plain.removed:
            note = "cannot be cleaned of hidden data"
        print(f"{given} (sent as {plain.name}): {note}", file=sys.stderr)
    client = api.Client(api.urllib_transport(args.server), language=args.language)
    try:
        receipt = client.submit(args.channel, report, None, files,
                                progress=lambda done, total: print(
                                    f"\ruploading {done}/{total}", end="", file=sys.stderr))
    except api.ApiError as exc:
        print(f"\nrefused: {exc.message} ({exc.code})", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"\nthe server could not be reached: {exc}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    print("Receipt (keep it secret, it cannot be recovered):", file=sys.stderr)
    print(crypto.format_receipt(receipt))
    return 0


def cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    from service.domain import housekeeping

    database = _database(settings)
    try:
        drafts, stamps = housekeeping.purge_once(database, settings)
    finally:
        database.dispose()
    print(f"discarded {drafts} unfinished uploads, forgot {stamps} expired stamps")
    return 0


def cmd_notify(settings: Settings, args: argparse.Namespace) -> int:
    database = _database(settings)
    try:
        sent, failed = notify.deliver_once(database, settings)
    finally:
        database.dispose()
    print(f"sent {sent} notifications, {failed} failed (retried later)")
    return 0 if not failed else 1


def cmd_reward(settings: Settings, args: argparse.Namespace) -> int:
    from service.domain.rewards import command

    return command.run(args)


def cmd_recover(settings: Settings, args: argparse.Namespace) -> int:
    from service.domain.recover import run_command

    # The secret comes from stdin only: an argument would sit in shell history and `ps`.
    if bool(args.channel) == bool(args.claims):
        print("refused: give either --channel SLUG or --claims", file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        print("Type the recovery secret, then Enter; then its X-Wing part, if it has one, "
              "and Enter (or just Enter):", file=sys.stderr)
    # At most the two parts, one a line, in either order.
    text = sys.stdin.readline() + sys.stdin.readline()
    return run_command(settings.database, None if args.claims else args.channel, args.to, text)


NO_PINNED_KEY = (
    "refused: no pinned public key. Give --key-file with the installation's signing.pub that "
    "you keep (its fingerprint is printed by `chuishao init` and shown on the console's audit "
    "page), or --public-key. To check against the key stored in the database instead, which "
    "anyone able to write the database can replace, say so with --trust-database-key.")


def _add_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-file", help="the installation's public key file you keep "
                        "(signing.pub, written by `chuishao init` or `chuishao audit key`), "
                        "or the installation's signing.key")
    parser.add_argument("--public-key", help="the installation's Ed25519 public key (hex or "
                        "base64url)")
    parser.add_argument("--trust-database-key", action="store_true",
                        help="check against the public key stored in the database (anyone "
                        "able to write the database can replace it)")


def _database_key(settings: Settings) -> bytes | None:
    from service.domain.installation import get_installation

    try:
        database = _database(settings)
        try:
            with database.session() as session:
                installation = get_installation(session)
                return installation.signing_public_key if installation else None
        finally:
            database.dispose()
    except Exception:  # noqa: BLE001 - no database here is a normal case
        return None


def _pinned_key(settings: Settings, args: argparse.Namespace) -> bytes | None:
    """The key to check signatures against, or None after saying why there is none."""
    from service.domain import installation

    given = [args.key_file, args.public_key, args.trust_database_key]
    if sum(1 for value in given if value) > 1:
        print("refused: give one of --key-file, --public-key, --trust-database-key",
              file=sys.stderr)
        return None
    if args.key_file:
        try:
            return installation.read_key_file(Path(args.key_file).read_bytes())
        except (OSError, ValueError) as exc:
            print(f"refused: --key-file {args.key_file}: {exc}", file=sys.stderr)
            return None
    if args.public_key:
        try:
            return installation.parse_public_key(args.public_key)
        except ValueError as exc:
            print(f"refused: --public-key: {exc}", file=sys.stderr)
            return None
    if args.trust_database_key:
        key = _database_key(settings)
        if key is None:
            print("refused: --trust-database-key: no installation in the database here",
                  file=sys.stderr)
            return None
        print("warning: the key comes from the database, not from a copy you keep; it proves "
              "nothing against someone able to write the database (fingerprint "
              f"{crypto.signing_fingerprint(key)})", file=sys.stderr)
        return key
    print(NO_PINNED_KEY, file=sys.stderr)
    return None


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    from service.domain import audit, installation

    if args.action == "key":
        path, public = installation.write_public_key_file(
            settings, Path(args.out) if args.out else None)
        print(f"public signing key -> {path}")
        print(f"fingerprint {crypto.signing_fingerprint(public)}")
        return 0
    anchors: list[audit.Anchor] = []
    if args.action == "verify":
        try:
            anchors = [audit.parse_anchor(text) for text in args.expect_head]
            if args.since_manifest:
                key = _pinned_key(settings, args)
                if key is None:
                    return 2
                for name in args.since_manifest:
                    anchors.append(audit.anchor_from_document(
                        Path(name).read_text(encoding="utf-8"), key, name))
        except audit.AnchorError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 2
    database = _database(settings)
    try:
        with database.session() as session:
            if args.action == "head":
                document = audit.signed_head(session, installation.load_signing_key(settings))
                text = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
                if args.out:
                    Path(args.out).write_text(text, encoding="utf-8")
                    print(f"signed head {document['entry']}:{document['head']} -> {args.out}")
                else:
                    print(text, end="")
                return 0
            report = audit.verify_chain(session)
            problems = audit.check_anchors(session, anchors) if report.ok else []
            last = audit.head(session)[0]
    finally:
        database.dispose()
    if not report.ok:
        print(f"audit chain BROKEN at entry {report.first_bad_id}: {report.problem}",
              file=sys.stderr)
        print(f"{report.count} entries before it are intact; the last good hash is "
              f"{report.head}", file=sys.stderr)
        return 1
    if problems:
        for problem in problems:
            print(f"audit chain does NOT match a head you hold: {problem}", file=sys.stderr)
        return 1
    print(f"audit chain intact: {report.count} entries, head {last}:{report.head}")
    if anchors:
        print(f"it contains every head you hold ({len(anchors)}), unchanged")
    else:
        print("(no head held outside the database was given: a database writer could have "
              "rewritten or cut back the chain; use --expect-head or --since-manifest)")
    return 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:

    from service.domain import exports

    if args.action == "verify":
        path, manifest = Path(args.file), Path(args.manifest)
        if not path.is_file() or not manifest.is_file():
            print("refused: FILE and MANIFEST must be readable files", file=sys.stderr)
            return 2
        key = _pinned_key(settings, args)
        if key is None:
            return 2
        checks = exports.verify(path, manifest.read_text(encoding="utf-8"), key)
        for check in checks:
            print(f"{'ok' if check.ok else 'MISMATCH'}\t{check.name}\t{check.detail}")
        if all(check.ok for check in checks):
            print("export verified: file, record count and signature match the manifest")
            return 0
        print("export NOT verified", file=sys.stderr)
        return 1
    from service.domain.reward_ledger import LedgerFilters
    from service.platform.errors import ChuishaoError

    database = _database(settings)
    try:
        try:
            filters = LedgerFilters.parse({"from": args.date_from, "to": args.date_to,
                                           "channel": args.channel, "status": args.status,
                                           "policy": args.policy})
        except ChuishaoError as exc:
            print(f"refused: {exc.message}", file=sys.stderr)
            return 2
        out = Path(args.out)
        fmt = args.format or out.suffix.lstrip(".").lower()
        with database.session() as session:
            try:
                export = exports.start_export(session, None, fmt, filters, via="cli")
            except ChuishaoError as exc:
                print(f"refused: {exc.message}", file=sys.stderr)
                return 2
            export_id = export.id
        # A terminated export unwinds (partial file removed, export marked failed) instead of
        # vanishing; a killed one is left to housekeeping.
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            signed = exports.write_export(database, settings, export_id, out)
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        database.dispose()
    print(f"{signed['record_count']} records -> {out} (sha256 {signed['file_sha256']})")
    print(f"manifest -> {out}.manifest.json (signed audit head "
          f"{signed['audit_chain']['entry']}:{signed['audit_chain']['head']})")
    return 0


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def cmd_poster(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from service.domain import poster
    from service.domain.models import Channel
    from service.platform.errors import ChuishaoError, NotFound
    from service.platform.i18n import N_, Catalogs

    translate = Catalogs.load().gettext(args.lang)
    database = _database(settings)
    try:
        with database.session() as session:
            channel = session.scalar(select(Channel).where(Channel.slug == args.channel))
            try:
                if channel is None:
                    raise NotFound(N_('There is no channel "{slug}".'), slug=args.channel)
                made = poster.make_poster(session, settings, channel, size=args.size,
                                          fmt=args.format, language=args.lang,
                                          translate=translate, policy_id=args.policy)
            except ChuishaoError as exc:
                print(f"refused: {translate(exc.message, **exc.params)}", file=sys.stderr)
                return 2
            session.commit()  # the shipped reward policies, copied in on first use
    finally:
        database.dispose()
    out = Path(args.output or made.filename)
    out.write_bytes(made.data)
    print(f"poster written to {out} ({len(made.data)} bytes)")
    if poster.local_address(settings):
        print("warning: " + translate(poster.LOCAL_ADDRESS,
                                      address=settings.base_url.rstrip("/")), file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chuishao", description="Chuishao operator commands")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="bring the database to the newest schema")

    init = sub.add_parser("init", help="first-time initialisation (keys, salt)")
    init.add_argument("--if-needed", action="store_true",
                      help="do nothing if the installation exists already")

    channel = sub.add_parser("channel", help="reporting lines")
    channel_sub = channel.add_subparsers(dest="action", required=True)
    add = channel_sub.add_parser("add")
    add.add_argument("slug")
    add.add_argument("--kind", choices=["enterprise", "bureau"], required=True)
    add.add_argument("--name-zh", required=True)
    add.add_argument("--name-en")
    channel_sub.add_parser("list")

    invite = sub.add_parser("invite", help="one-time link for a new console account")
    invite.add_argument("--role", action="append", required=True,
                        choices=["reviewer", "approver", "auditor", "finance", "admin"])
    invite.add_argument("--channel", help="channel slug whose new reports the account will "
                        "receive (reviewers only)")
    invite.add_argument("--scope", action="append", metavar="SLUG",
                        help="channel whose records the account may see (any role; repeat)")
    invite.add_argument("--hours", type=int)

    scope = sub.add_parser("scope", help="channels whose records an account may see")
    scope_sub = scope.add_subparsers(dest="action", required=True)
    for name in ("add", "remove"):
        change = scope_sub.add_parser(name)
        change.add_argument("username")
        change.add_argument("channel", help="channel slug")
    scope_sub.add_parser("list", help="every account: roles, channels received, scope")

    submit = sub.add_parser("submit", help="seal a report locally and send it to a server")
    submit.add_argument("--server", required=True, help="e.g. http://127.0.0.1:8000")
    submit.add_argument("--channel", required=True, help="channel id (see /api/v1/channels)")
    submit.add_argument("--unit", required=True, help="the unit (enterprise) reported")
    submit.add_argument("--location")
    submit.add_argument("--category", default="hazard",
                        choices=["hazard", "violation", "concealed_accident", "other"])
    submit.add_argument("--file", help="read the report text from this file (default: stdin)")
    submit.add_argument("--language", default="zh-CN", help="language of error messages")
    submit.add_argument("attachments", nargs="*", help="files to attach (photos are cleaned)")
    submit.add_argument("--keep-names", action="store_true",
                        help="send files under their own names instead of photo-1.jpg style")

    sub.add_parser("purge", help="discard unfinished uploads and expired anti-abuse stamps")

    notify_parser = sub.add_parser("notify", help="staff notifications")
    notify_sub = notify_parser.add_subparsers(dest="action", required=True)
    notify_sub.add_parser("run-once", help="deliver what the outbox holds that is due")

    recover = sub.add_parser("recover", help="re-grant a channel's cases to a reviewer with "
                             "the recovery secret (read from stdin)")
    recover.add_argument("--channel", help="channel slug: its cases go to a reviewer")
    recover.add_argument("--claims", action="store_true",
                         help="every reward claim goes to a finance officer instead")
    recover.add_argument("--to", required=True, help="username of the reviewer or officer")

    recovery = sub.add_parser("recovery", help="the installation's offline recovery key")
    recovery_sub = recovery.add_subparsers(dest="action", required=True)
    recovery_sub.add_parser("add-pq", help="give the recovery key its X-Wing (post-quantum) "
                            "part, printing its secret once; for installations made before it")

    secret_key = sub.add_parser("secret-key", help="the key sessions and tokens are signed with")
    secret_key_sub = secret_key.add_subparsers(dest="action", required=True)
    secret_key_sub.add_parser("adopt", help="make this machine's key the installation's, after "
                              "replacing it on every instance")

    serve = sub.add_parser("serve", help="serve the application")
    serve.add_argument("--first-admin-link", action="store_true",
                       help="print a one-time link when no administrator exists")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="N processes on one port (PostgreSQL only; docs/OPERATIONS.md)")
    audit = sub.add_parser("audit", help="the audit trail")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    verify = audit_sub.add_parser("verify", help="walk the hash chain; say where it breaks "
                                  "and whether it still holds the heads you kept")
    verify.add_argument("--expect-head", action="append", default=[], metavar="ENTRY:HASH",
                        help="a head you kept (as this command prints it); repeatable")
    verify.add_argument("--since-manifest", action="append", default=[], metavar="FILE",
                        help="an export manifest or signed head you kept; its signature is "
                        "checked with the pinned key; repeatable")
    _add_key_options(verify)
    head = audit_sub.add_parser("head", help="print the chain's head signed with the "
                                "installation's key, for the auditor to keep")
    head.add_argument("--out", help="write it to this file")
    key = audit_sub.add_parser("key", help="write the public signing key file for the "
                               "auditor (signing.pub) and print its fingerprint")
    key.add_argument("--out", help="where to write it (default: signing.pub beside signing.key)")

    export = sub.add_parser("export", help="signed exports of the reward ledger")
    export_sub = export.add_subparsers(dest="action", required=True)
    check = export_sub.add_parser("verify", help="check an export against its manifest offline")
    check.add_argument("file")
    check.add_argument("manifest")
    _add_key_options(check)
    rewards = export_sub.add_parser("rewards", help="write FILE and FILE.manifest.json")
    rewards.add_argument("--out", required=True, help="e.g. rewards.csv or rewards.xlsx")
    rewards.add_argument("--format", choices=["csv", "xlsx"])
    rewards.add_argument("--from", dest="date_from", help="proposed on or after (YYYY-MM-DD)")
    rewards.add_argument("--to", dest="date_to", help="proposed on or before (YYYY-MM-DD)")
    rewards.add_argument("--channel", help="channel id")
    rewards.add_argument("--status")
    rewards.add_argument("--policy", help="policy id")

    poster = sub.add_parser("poster", help="a printable poster for a channel (A4/A3, PDF/SVG)")
    poster.add_argument("channel", help="channel slug (see `chuishao channel list`)")
    poster.add_argument("--size", choices=["a4", "a3"], default="a4")
    poster.add_argument("--format", choices=["pdf", "svg"], default="pdf")
    poster.add_argument("--lang", choices=["zh_CN", "en"], default="zh_CN")
    poster.add_argument("--output", help="file to write (default: poster-SLUG-SIZE-LANG.FORMAT)")
    poster.add_argument("--policy", help="id of the active reward policy the poster names")

    from service.domain.rewards import command as reward_command

    reward_command.add_parser(sub)
    return parser


COMMANDS = {
    "migrate": cmd_migrate,
    "init": cmd_init,
    "channel": cmd_channel,
    "invite": cmd_invite,
    "scope": cmd_scope,
    "serve": cmd_serve,
    "submit": cmd_submit,
    "purge": cmd_purge,
    "reward": cmd_reward,
    "notify": cmd_notify,
    "recover": cmd_recover,
    "recovery": cmd_recovery,
    "secret-key": cmd_secret_key,
    "audit": cmd_audit,
    "export": cmd_export,
    "poster": cmd_poster,
}


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The database and key files hold sealed reports and secrets: readable by us only.
    os.umask(0o077)
    settings = settings or Settings.from_environ()
    localtime.install(settings.time_zone)
    return COMMANDS[args.command](settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
