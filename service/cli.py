"""The operator's command line: ``chuishao init | migrate | channel | invite | serve``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sqlalchemy import select

from service.db import Database
from service.settings import Settings


def _database(settings: Settings) -> Database:
    return Database.from_url(settings.database)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from service import housekeeping, migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.database)
    database = _database(settings)
    try:
        housekeeping.refresh_statistics(database)
    finally:
        database.dispose()
    print("database is at the newest schema")
    return 0


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    from service import installation

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
    print("With it, `chuishao recover` can re-grant access to cases when every reviewer of a")
    print("channel has lost their password. Without it, such cases cannot be opened again.")
    return 0


def cmd_channel(settings: Settings, args: argparse.Namespace) -> int:
    from service import channels
    from service.errors import ChuishaoError

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
            hours: int) -> str:
    from reviewer import invitations
    from service.models import Channel

    database = _database(settings)
    try:
        with database.session() as session:
            channel = None
            if channel_slug:
                channel = session.scalar(select(Channel).where(Channel.slug == channel_slug))
                if channel is None:
                    raise SystemExit(f"no channel {channel_slug!r}")
            _, token = invitations.create_invitation(
                session, roles=session_roles, hours=hours, channel=channel)
    finally:
        database.dispose()
    return f"{settings.base_url.rstrip('/')}/console/invite/{token}"


def cmd_invite(settings: Settings, args: argparse.Namespace) -> int:
    hours = args.hours or settings.invitation_hours
    link = _invite(settings, args.role, args.channel, hours)
    print(f"One-time invitation ({', '.join(args.role)}), valid {hours} h:")
    print(link)
    return 0


def _has_admin(settings: Settings) -> bool:
    from service.models import User

    database = _database(settings)
    try:
        with database.session() as session:
            users = session.scalars(select(User.roles).where(User.active.is_(True))).all()
    finally:
        database.dispose()
    return any("admin" in roles.split() for roles in users)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from service import logs
    from service.app import create_app

    logs.configure(settings.log_level, granularity_seconds=settings.time_granularity_seconds)
    if args.first_admin_link and not _has_admin(settings):
        link = _invite(settings, ["admin"], None, settings.invitation_hours)
        print()
        print("No administrator yet. Open this one-time link to create the first account:")
        print(f"    {link}")
        print()
    app = create_app(settings)
    uvicorn.run(
        app, host=settings.host, port=settings.port,
        access_log=False,  # its lines carry client addresses; ours do not
        proxy_headers=False, server_header=False,
        log_config=logs.UVICORN_LOG_CONFIG, log_level=settings.log_level.lower(),
    )
    return 0


def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    """Seal a report on this machine and send it: a real client of the public API."""
    from pathlib import Path

    import crypto
    from service import client as api
    from service.metadata import MetadataError

    text = Path(args.file).read_text(encoding="utf-8") if args.file else sys.stdin.read()
    if not text.strip():
        print("refused: the report text is empty", file=sys.stderr)
        return 2
    try:
        files = [api.plain_file(Path(name)) for name in args.attachments]
    except (OSError, MetadataError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    report = {"v": 1, "unit": args.unit, "location": args.location or "",
              "category": args.category, "description": text.strip(), "seen_at": "",
              "insider": "", "language": "zh_CN"}
    for plain in files:
        note = ", ".join(plain.removed) if plain.removed else "nothing to remove"
        if not plain.cleaned and not plain.removed:
            note = "cannot be cleaned of hidden data"
        print(f"{plain.name}: {note}", file=sys.stderr)
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
    from service import housekeeping

    database = _database(settings)
    try:
        drafts, stamps = housekeeping.purge_once(database)
    finally:
        database.dispose()
    print(f"discarded {drafts} unfinished uploads, forgot {stamps} expired stamps")
    return 0


def cmd_reward(settings: Settings, args: argparse.Namespace) -> int:
    from reviewer.rewards import command

    return command.run(args)


def cmd_recover(settings: Settings, args: argparse.Namespace) -> int:
    from reviewer.recover import run_command

    # The secret comes from stdin only: an argument would sit in shell history and `ps`.
    if sys.stdin.isatty():
        print("Type the recovery secret, then Enter:", file=sys.stderr)
    if bool(args.channel) == bool(args.claims):
        print("refused: give either --channel SLUG or --claims", file=sys.stderr)
        return 2
    return run_command(settings.database, None if args.claims else args.channel, args.to,
                       sys.stdin.readline())


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    from reviewer import audit

    database = _database(settings)
    try:
        with database.session() as session:
            report = audit.verify_chain(session)
    finally:
        database.dispose()
    if not report.ok:
        print(f"audit chain BROKEN at entry {report.first_bad_id}: {report.problem}",
              file=sys.stderr)
        print(f"{report.count} entries before it are intact; the last good hash is "
              f"{report.head}", file=sys.stderr)
        return 1
    print(f"audit chain intact: {report.count} entries, head {report.head}")
    return 0


def _pinned_key(settings: Settings, given: str | None) -> bytes | None:
    import crypto

    if given:
        text = given.strip()
        try:
            return bytes.fromhex(text) if len(text) == 64 else crypto.b64u_decode(text)
        except ValueError:
            raise SystemExit("--public-key: 32 bytes as 64 hex characters or base64url") from None
    try:  # the installation's key, when this machine has the database
        from service.installation import get_installation

        database = _database(settings)
        try:
            with database.session() as session:
                installation = get_installation(session)
                return installation.signing_public_key if installation else None
        finally:
            database.dispose()
    except Exception:  # noqa: BLE001 - offline: no database is a normal case here
        return None


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from reviewer import exports

    if args.action == "verify":
        path, manifest = Path(args.file), Path(args.manifest)
        if not path.is_file() or not manifest.is_file():
            print("refused: FILE and MANIFEST must be readable files", file=sys.stderr)
            return 2
        checks = exports.verify(path, manifest.read_text(encoding="utf-8"),
                                _pinned_key(settings, args.public_key))
        for check in checks:
            print(f"{'ok' if check.ok else 'MISMATCH'}\t{check.name}\t{check.detail}")
        if all(check.ok for check in checks):
            print("export verified: file, record count and signature match the manifest")
            return 0
        print("export NOT verified", file=sys.stderr)
        return 1
    from reviewer.rewardflow import LedgerFilters
    from service.errors import ChuishaoError

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
        signed = exports.write_export(database, settings, export_id, out)
    finally:
        database.dispose()
    print(f"{signed['record_count']} records -> {out} (sha256 {signed['file_sha256']})")
    print(f"manifest -> {out}.manifest.json")
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
    invite.add_argument("--channel", help="channel slug the reviewer will receive")
    invite.add_argument("--hours", type=int)

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

    sub.add_parser("purge", help="discard unfinished uploads and expired anti-abuse stamps")

    recover = sub.add_parser("recover", help="re-grant a channel's cases to a reviewer with "
                             "the recovery secret (read from stdin)")
    recover.add_argument("--channel", help="channel slug: its cases go to a reviewer")
    recover.add_argument("--claims", action="store_true",
                         help="every reward claim goes to a finance officer instead")
    recover.add_argument("--to", required=True, help="username of the reviewer or officer")

    serve = sub.add_parser("serve", help="serve the application")
    serve.add_argument("--first-admin-link", action="store_true",
                       help="print a one-time link when no administrator exists")
    audit = sub.add_parser("audit", help="the audit trail")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    audit_sub.add_parser("verify", help="walk the hash chain; say where it breaks")

    export = sub.add_parser("export", help="signed exports of the reward ledger")
    export_sub = export.add_subparsers(dest="action", required=True)
    check = export_sub.add_parser("verify", help="check an export against its manifest offline")
    check.add_argument("file")
    check.add_argument("manifest")
    check.add_argument("--public-key", help="the installation's Ed25519 public key (hex or "
                       "base64url); read from the database when omitted and available")
    rewards = export_sub.add_parser("rewards", help="write FILE and FILE.manifest.json")
    rewards.add_argument("--out", required=True, help="e.g. rewards.csv or rewards.xlsx")
    rewards.add_argument("--format", choices=["csv", "xlsx"])
    rewards.add_argument("--from", dest="date_from", help="proposed on or after (YYYY-MM-DD)")
    rewards.add_argument("--to", dest="date_to", help="proposed on or before (YYYY-MM-DD)")
    rewards.add_argument("--channel", help="channel id")
    rewards.add_argument("--status")
    rewards.add_argument("--policy", help="policy id")

    from reviewer.rewards import command as reward_command

    reward_command.add_parser(sub)
    return parser


COMMANDS = {
    "migrate": cmd_migrate,
    "init": cmd_init,
    "channel": cmd_channel,
    "invite": cmd_invite,
    "serve": cmd_serve,
    "submit": cmd_submit,
    "purge": cmd_purge,
    "reward": cmd_reward,
    "recover": cmd_recover,
    "audit": cmd_audit,
    "export": cmd_export,
}


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The database and key files hold sealed reports and secrets: readable by us only.
    os.umask(0o077)
    settings = settings or Settings.from_environ()
    return COMMANDS[args.command](settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
