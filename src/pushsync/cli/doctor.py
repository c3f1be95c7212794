"""`pushsync doctor`: what is wrong with this installation, one line per finding with its fix.

Checks, in order: the settings hold together, the database is reachable and its schema
current, Microsoft's address ranges are fresh enough, the public URL answers a self-test
notification as Exchange would post it (and Graph's validation handshake), the local clock
agrees with Exchange's and Graph's, the Graph token carries the permissions pushsync needs, and
every room has a live subscription. The exit code is 1 if any check failed, 0 with only
warnings (docs/operations.md); settings that cannot be read at all stop it at once (exit 2).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from ipaddress import ip_network

import typer

from pushsync.admin.room_status import RoomStatus
from pushsync.cli.common import ConfigOption, DatabaseOption, console, settings_or_exit
from pushsync.cli.doctor_findings import Finding, Level, fail, ok, warn
from pushsync.errors import PushsyncError
from pushsync.model.clock import utcnow
from pushsync.settings import Settings

commands = typer.Typer()

RANGES_WARN_AGE = timedelta(days=3)  # Microsoft updates the list about monthly, refresh daily
RANGES_FAIL_AGE = timedelta(days=30)
# subscription problems that mean Exchange cannot reach pushsync for the room: failures
LOST_KINDS = {"no subscription", "subscription broken", "silent"}
ROOMS_SHOWN = 5


@commands.command()
def doctor(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Check settings, database, address ranges, the public URL, clocks, Graph permissions and
    subscriptions; one line per finding with its fix. Exit 1 if a check failed."""
    settings = settings_or_exit(config, database_url=database_url)
    findings = asyncio.run(examine(settings))
    failed = sum(1 for f in findings if f.level is Level.FAIL)
    warned = sum(1 for f in findings if f.level is Level.WARN)
    console.print(f"{len(findings)} checks: {failed} failed, {warned} warnings", highlight=False)
    if failed:
        raise typer.Exit(1)


async def examine(settings: Settings) -> list[Finding]:
    """Every check, each finding printed as soon as it is known (a slow probe shows where)."""
    from pushsync.cli import doctor_probes  # httpx, only for this command

    findings: list[Finding] = []

    def report(found: list[Finding]) -> None:
        for finding in found:
            console.print(finding.line(), highlight=False, soft_wrap=True)
        findings.extend(found)

    report(settings_findings(settings))
    report(ranges_findings(settings, utcnow()))
    report(await database_and_rooms(settings))
    report(await doctor_probes.probe(settings))
    return findings


def settings_findings(settings: Settings) -> list[Finding]:
    """Settings that load but do not hold together."""
    protocols = settings.protocols_needed()
    found = [*_room_settings(settings, protocols), *_receiver_settings(settings)]
    if "ews" in protocols:
        found += _ews_settings(settings)
    if "graph" in protocols:
        found += _graph_settings(settings)
    return found or [ok("settings", f"coherent; rooms over {', '.join(sorted(protocols))}")]


def _room_settings(settings: Settings, protocols: set[str]) -> list[Finding]:
    if not protocols:
        return [
            warn(
                "settings", "no room configured", "set PUSHSYNC_ROOMS (or room_lists, graph_rooms)"
            )
        ]
    if not settings.public_url:
        return [
            fail(
                "settings",
                "rooms are configured but public_url is not: Exchange cannot be told where to post",
                "set PUSHSYNC_PUBLIC_URL to the address the reverse proxy publishes",
            )
        ]
    return []


def _receiver_settings(settings: Settings) -> list[Finding]:
    found = []
    if settings.callback_token is None and not settings.allow_callbacks_without_token:
        found.append(
            fail(
                "settings",
                "no callback_token and allow_callbacks_without_token is off: serve refuses to "
                "start",
                "set PUSHSYNC_CALLBACK_TOKEN (docs/deploying.md)",
            )
        )
    if not settings.use_microsoft_ranges and not settings.allowed_networks:
        found.append(
            fail(
                "settings",
                "use_microsoft_ranges is off and allowed_networks is empty: every EWS post is "
                "refused",
                "turn use_microsoft_ranges on, or list Exchange's sources in allowed_networks",
            )
        )
    broad = [net for net in settings.trusted_proxies if ip_network(net).prefixlen < 8]
    if broad:
        found.append(
            fail(
                "settings",
                f"trusted_proxies {', '.join(broad)} trusts most of the internet: any client "
                f"can name its source in {settings.forwarded_header}",
                "list only the reverse proxies' own addresses",
            )
        )
    if (settings.public_url or "").startswith("https:") and not settings.trusted_proxies:
        found.append(
            warn(
                "settings",
                "public_url is https (a proxy terminates TLS) but trusted_proxies is empty: "
                "the source filter sees the proxy's address, not Exchange's",
                f"set PUSHSYNC_TRUSTED_PROXIES to the proxy and have it set "
                f"{settings.forwarded_header}",
            )
        )
    return found


def _ews_settings(settings: Settings) -> list[Finding]:
    found = []
    if not settings.ews_url:
        found.append(
            fail(
                "settings",
                "rooms use EWS but ews_url is not set",
                "set PUSHSYNC_EWS_URL, e.g. https://outlook.office365.com/EWS/Exchange.asmx",
            )
        )
    if settings.ews_auth == "oauth":
        missing = _missing(settings, "tenant_id", "client_id", "client_secret")
    else:
        missing = _missing(settings, "ews_username", "ews_password")
    if missing:
        found.append(
            fail(
                "settings",
                f"ews_auth = {settings.ews_auth} needs {', '.join(missing)}",
                _set(missing),
            )
        )
    return found


def _graph_settings(settings: Settings) -> list[Finding]:
    found = []
    if settings.graph_client_state is None:
        found.append(
            fail(
                "settings",
                "rooms use Graph but graph_client_state is not set: the Graph path is not served",
                "set PUSHSYNC_GRAPH_CLIENT_STATE (a secret, docs/graph.md)",
            )
        )
    missing = _missing(settings, "tenant_id", "client_id", "client_secret")
    if settings.graph_token is None and missing:
        found.append(
            fail(
                "settings",
                f"rooms use Graph but {', '.join(missing)} not set: no token can be had",
                _set(missing),
            )
        )
    if settings.graph_renew_before_minutes >= settings.graph_subscription_minutes:
        found.append(
            warn(
                "settings",
                "graph_renew_before_minutes is not below graph_subscription_minutes: every "
                "round renews every subscription",
                "lower graph_renew_before_minutes (default 1440)",
            )
        )
    return found


def _set(names: list[str]) -> str:
    variables = [f"PUSHSYNC_{name.upper()}" for name in names]
    return (
        "set " + (", ".join(variables[:-1]) + " and " if len(variables) > 1 else "") + variables[-1]
    )


def _missing(settings: Settings, *names: str) -> list[str]:
    return [name for name in names if not getattr(settings, name)]


def ranges_findings(settings: Settings, now: datetime) -> list[Finding]:
    """The Exchange address ranges the EWS path admits: there, and how old."""
    from pushsync.web.access.ipranges import current_path, load_ranges

    if not settings.use_microsoft_ranges:
        return [ok("address ranges", "not used (use_microsoft_ranges = false)")]
    refresh = "run `pushsync ipranges refresh` (and its daily timer, docs/deploying.md)"
    try:
        ranges = load_ranges(settings.ipranges_dir, settings.ipranges_instance)
    except PushsyncError as exc:
        return [fail("address ranges", str(exc), refresh)]
    refreshed = current_path(settings.ipranges_dir, settings.ipranges_instance).is_file()
    where = str(settings.ipranges_dir) if refreshed else "the packaged snapshot (never refreshed)"
    try:
        age = now - datetime.fromisoformat(ranges.retrieved_at)
    except (TypeError, ValueError):
        return [fail("address ranges", f"{where}: no retrieval date in the list", refresh)]
    what = f"{settings.ipranges_instance} {ranges.latest} from {where}, {_age(age)} old"
    if age > RANGES_FAIL_AGE:
        return [fail("address ranges", what + ": Exchange may post from newer ranges", refresh)]
    if age > RANGES_WARN_AGE:
        return [warn("address ranges", what, refresh)]
    return [ok("address ranges", what)]


def _age(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"


async def database_and_rooms(settings: Settings) -> list[Finding]:
    """Reachable, schema current; then the rooms' subscriptions, which only it can tell."""
    from pushsync.admin.room_status import room_statuses
    from pushsync.cli.common import require_database
    from pushsync.store import open_store
    from pushsync.store.migrations import applied_versions
    from pushsync.store.queries import load_migrations

    url = _shown(settings.database_url)
    try:
        require_database(settings.database_url)  # the doctor creates no database
        async with open_store(settings, migrate=False) as connector:
            applied = set(await applied_versions(connector))
            known = [version for version, _, _ in load_migrations(connector.dialect)]
            statuses = await room_statuses(connector, utcnow())
    except PushsyncError as exc:
        return [
            fail(
                "database", f"{url}: {exc}", "give the database serve and worker use (database_url)"
            )
        ]
    pending = [version for version in known if version not in applied]
    if pending:
        database = fail(
            "database",
            f"{url} reachable, migrations {pending} pending",
            "run `pushsync db upgrade` (or start serve with auto_migrate on)",
        )
    else:
        database = ok("database", f"{url} reachable, schema at version {max(known, default=0)}")
    return [database, *subscription_findings(settings, statuses)]


def _shown(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"
    return url


def subscription_findings(settings: Settings, rooms: list[RoomStatus]) -> list[Finding]:
    """Rooms Exchange cannot reach pushsync for (failures), other room problems (warnings)."""
    if not rooms:
        if settings.protocols_needed():
            return [
                warn(
                    "subscriptions",
                    "the database knows no room yet: the worker has not run against it",
                    "start `pushsync worker` (it subscribes every configured room)",
                )
            ]
        return []
    by_kind: dict[str, list[str]] = {}
    for status in rooms:
        if status.kind is not None:
            by_kind.setdefault(status.kind, []).append(status.mailbox)
    found = [_room_problem(kind, mailboxes) for kind, mailboxes in sorted(by_kind.items())]
    in_sync = sum(1 for s in rooms if s.kind is None)
    if not any(f.level is Level.FAIL for f in found):
        found.insert(
            0, ok("subscriptions", f"{len(rooms)} rooms subscribed, {in_sync} of them in sync")
        )
    return found


_FIXES = {
    "no subscription": "start `pushsync worker`, or run `pushsync subscriptions sync`",
    "subscription broken": "the worker's manager replaces it; `pushsync subscriptions list "
    "--problems` says why",
    "silent": "Exchange stopped posting: check the public URL check below and the receiver's "
    "log; the manager resubscribes",
}


def _room_problem(kind: str, mailboxes: list[str]) -> Finding:
    shown = ", ".join(mailboxes[:ROOMS_SHOWN]) + (
        f" and {len(mailboxes) - ROOMS_SHOWN} more" if len(mailboxes) > ROOMS_SHOWN else ""
    )
    what = f"{len(mailboxes)} room(s) {kind}: {shown}"
    if kind in LOST_KINDS:
        return fail("subscriptions", what, _FIXES[kind])
    return warn("subscriptions", what, "`pushsync subscriptions list --problems` says why")
