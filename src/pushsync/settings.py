"""Settings: typed, immutable, read once.

Sources, strongest first: command-line flags, environment variables `PUSHSYNC_<NAME>`, the
TOML file named by `PUSHSYNC_CONFIG_FILE` (or `--config`), then the defaults below.
Secrets are `SecretStr`: they print as '**********' in logs and reprs.
"""

from __future__ import annotations

import os
import re
import tomllib
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pushsync.errors import ConfigError
from pushsync.model.notification import UnknownSubscriptions

CONFIG_FILE_ENV = "PUSHSYNC_CONFIG_FILE"
DEFAULT_DATABASE_URL = "sqlite:///var/pushsync.db"


def _networks(value: Any) -> Any:
    """A comma-separated string (environment) or a list (TOML); each entry must be a network."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        for entry in value:
            ip_network(str(entry).strip(), strict=True)  # ValueError names the bad entry
    return value


Networks = Annotated[list[str], NoDecode, BeforeValidator(_networks)]


def _mailboxes(value: Any) -> Any:
    """A comma-separated string (environment) or a list (TOML) of SMTP addresses."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and not all("@" in str(entry) for entry in value):
        raise ValueError("every entry must be an SMTP address")
    return value


Mailboxes = Annotated[list[str], NoDecode, BeforeValidator(_mailboxes)]


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: Any) -> Any:
    if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
        return value.strip().upper()
    raise ValueError(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PUSHSYNC_", frozen=True, extra="forbid")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="sqlite:///relative/path, sqlite:////absolute/path or postgresql://…",
    )
    auto_migrate: bool = Field(True, description="apply pending schema migrations at start")
    sqlite_busy_timeout_ms: int = Field(5000, ge=0)
    database_pool_size: int = Field(
        8, ge=1, le=1000, description="PostgreSQL connections per process at most"
    )
    database_busy_wait_seconds: float = Field(
        30.0,
        ge=0,
        description="how long a PostgreSQL session waits for a connection while the process's"
        " own sessions hold every one of its pool",
    )

    # the public listener (only the notification paths)
    host: str = "0.0.0.0"  # noqa: S104 - the public listener is meant to be reachable
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="receiver processes sharing the port")
    ews_path: str = "/Webservices/SyncNotification.svc"
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_connections: int = Field(2000, ge=1, description="per process; beyond it answers 503")
    keep_alive_seconds: int = Field(5, ge=1)
    # hardening of the public listener (docs/deploying.md)
    header_timeout_seconds: float = Field(10.0, gt=0, description="request line + headers")
    body_timeout_seconds: float = Field(20.0, gt=0, description="whole body, once headers are in")
    max_header_bytes: int = Field(16 * 1024, ge=1024, description="request line + headers")
    use_microsoft_ranges: bool = Field(True, description="allow Microsoft's Exchange ranges")
    ipranges_instance: Literal["Worldwide", "USGovDoD", "USGovGCCHigh", "China"] = "Worldwide"
    ipranges_dir: Path = Field(Path("var/ipranges"), description="where refreshes keep the list")
    ipranges_service_url: str = "https://endpoints.office.com"
    allowed_networks: Networks = Field(
        default_factory=list, description="operator-added sources, e.g. on-premises Exchange"
    )
    trusted_proxies: Networks = Field(default_factory=list, description="reverse proxies")
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    callback_token: SecretStr | None = Field(None, description="secret in the callback URL")
    callback_token_previous: SecretStr | None = Field(None, description="still accepted")
    allow_callbacks_without_token: bool = Field(
        False, description="legacy: accept notifications whose URL carries no token"
    )
    # Microsoft Graph change notifications (docs/graph.md)
    graph_path: str = "/graph/notifications"
    graph_client_state: SecretStr | None = Field(
        None, description="clientState given to Graph; the Graph path is served only when set"
    )
    graph_client_state_previous: SecretStr | None = Field(None, description="still accepted")
    graph_allowed_networks: Networks = Field(
        default_factory=list,
        description="sources allowed on the Graph path; empty: any (clientState authenticates)",
    )
    # the admin listener: health, readiness, metrics, status; never on the public one
    admin_host: str = "127.0.0.1"
    admin_port: int = Field(8081, ge=0, le=65535)

    # Exchange: where the subscription manager and the worker call (docs/configuration.md)
    ews_url: str | None = Field(
        None, description="e.g. https://outlook.office365.com/EWS/Exchange.asmx"
    )
    ews_auth: Literal["oauth", "ntlm", "basic"] = "oauth"
    ews_username: str | None = None
    ews_password: SecretStr | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    authority_host: str = "https://login.microsoftonline.com"
    authority_discovery: bool = Field(
        True,
        description="msal's instance discovery and authority validation (off: a test authority)",
    )
    authority_ca_bundle: str | None = Field(
        None, description="CA certificates to trust for authority_host (a test authority's)"
    )
    ews_max_concurrency: int = Field(27, ge=1, le=27, description="EWSMaxConcurrency")
    rooms: Mailboxes = Field(default_factory=list, description="room SMTP addresses")
    room_lists: Mailboxes = Field(default_factory=list, description="room lists to expand")
    # Graph's Places (docs/graph.md): room_lists are read from it when no ews_url is set
    discover_all_rooms: bool = Field(False, description="every room Graph's Places lists")
    room_discovery_minutes: float = Field(
        60.0, gt=0, description="how often room lists (or all rooms) are read from Places again"
    )
    room_removal_grace_hours: float = Field(
        24.0,
        ge=0,
        description="a room Places no longer lists is let go of (subscription deleted, "
        "reservations removed) only after it has been missing this long",
    )
    # which push each room uses: `protocol` for `rooms` and `room_lists`, the lists override it
    protocol: Literal["ews", "graph"] = Field("ews", description="for rooms and room_lists")
    graph_rooms: Mailboxes = Field(default_factory=list, description="over Graph, always")
    ews_rooms: Mailboxes = Field(default_factory=list, description="over EWS push, always")
    # Microsoft Graph: where the Graph manager and worker call (docs/graph.md)
    graph_url: str = "https://graph.microsoft.com/v1.0"
    graph_token: SecretStr | None = Field(
        None, description="a fixed bearer token instead of msal (the simulator's; short-lived)"
    )
    graph_subscription_minutes: int = Field(10000, ge=45, le=10080, description="lifetime")
    graph_renew_before_minutes: int = Field(
        1440,
        ge=1,
        description="renew at the latest when this much is left; each subscription renews at a "
        "point of its own up to twice this before it expires, so that renewals are spread",
    )
    graph_subscription_write_limit: int = Field(
        500,
        ge=1,
        description="subscription writes (create, renew, delete) per window, per app and tenant, "
        "for every manager process together (Graph's limit: 500 per 20 s)",
    )
    graph_subscription_write_window_seconds: float = Field(
        20.0, gt=0, description="the window graph_subscription_write_limit counts over"
    )
    graph_polling_minutes: float = Field(
        5.0, gt=0, description="how often a room Graph refuses a subscription is read instead"
    )
    public_url: str | None = Field(None, description="where Exchange reaches the public listener")
    status_frequency_minutes: int = Field(15, ge=1, le=1440)
    subscription_check_seconds: float = Field(60.0, gt=0)
    max_retry_after_seconds: float = Field(
        3600.0,
        gt=0,
        description="the longest Retry-After waited out for one room; a longer one (Graph's "
        "1,000-subscription cap answers one of years) is shown as the room's problem and the "
        "room tried again after this long",
    )
    # the sync worker
    sync_window_past_days: int = Field(1, ge=0)
    sync_window_future_days: int = Field(365, ge=1, description="at least the booking window")
    worker_batch_size: int = Field(500, ge=1)
    worker_debounce_ms: int = Field(500, ge=0, description="let a burst settle before fetching")
    worker_lease_seconds: float = Field(
        300.0, gt=0, description="a claimed row returns to the queue if its worker dies"
    )
    status_sample_seconds: float = Field(
        60.0,
        gt=0,
        le=60,
        description="how often the worker adds to its minute's row of the status page's history",
    )
    resync_interval_hours: float = Field(
        24.0,
        ge=0,
        description="full resync of every room this often (0: never): series occurrences that "
        "enter the window's far end are stored, and any drift is repaired",
    )
    # a round of resyncs lasts as long as its slowest read: 40 rooms keep EWS's 27 concurrent
    # calls busier than 16 did (bench/fleet, 2,000 rooms, two workers: 37 -> 45 rooms/s)
    worker_resync_concurrency: int = Field(
        40, ge=1, le=64, description="rooms resynced at once per worker process"
    )
    fetch_chunk_size: int = Field(25, ge=1, le=100, description="item ids per GetItem")
    notification_retention_days: int = Field(7, ge=1)

    # every long-running process's heartbeat (store/processes.py)
    process_heartbeat_seconds: float = Field(
        15.0, gt=0, description="how often each process notes in the database that it lives"
    )
    process_dead_after_seconds: float = Field(
        60.0, gt=0, description="a process whose last heartbeat is older is down"
    )
    process_forget_after_days: float = Field(
        7.0, gt=0, description="the row of a process down this long is deleted"
    )

    unknown_subscriptions: UnknownSubscriptions = UnknownSubscriptions.ACCEPT
    max_batch_rows: int = Field(2000, ge=1, description="rows per group commit at most")

    log_level: Annotated[str, BeforeValidator(_log_level)] = Field(
        "INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )
    log_http_requests: bool = Field(
        False, description="a line per HTTP request httpx makes (the URLs carry tokens: masked)"
    )
    log_format: Literal["keyvalue", "json"] = Field(
        "keyvalue", description="key=value lines, or one JSON object a line"
    )

    @model_validator(mode="after")
    def _one_protocol_per_room(self) -> Settings:
        both = {m.lower() for m in self.graph_rooms} & {m.lower() for m in self.ews_rooms}
        if both:
            raise ValueError(f"rooms in both graph_rooms and ews_rooms: {', '.join(sorted(both))}")
        if self.process_dead_after_seconds <= self.process_heartbeat_seconds:
            raise ValueError(
                "process_dead_after_seconds must exceed process_heartbeat_seconds (a few beats)"
            )
        return self

    def protocols_needed(self) -> set[str]:
        """The protocols some configured room uses (known without asking Exchange): each
        needs a worker (`pushsync status` says when none runs)."""
        listed = self.rooms or self.room_lists or self.discover_all_rooms
        needed: set[str] = {self.protocol} if listed else set()
        needed |= {"graph"} if self.graph_rooms or self.discovers_over_graph() else set()
        expanded_over_ews = bool(self.room_lists and self.ews_url)
        needed |= {"ews"} if self.ews_rooms or expanded_over_ews else set()
        return needed

    def discovers_over_graph(self) -> bool:
        """Rooms come from Graph's Places: every room when asked, and the room lists of an
        installation with no EWS (with `ews_url`, room lists are expanded over EWS GetRooms)."""
        return self.discover_all_rooms or bool(self.room_lists and not self.ews_url)

    def connector_options(self) -> dict[str, float]:
        """What `store.connect` is given besides the URL: the chosen engine's own knobs."""
        if self.database_url.startswith("sqlite:"):
            return {"busy_timeout_ms": self.sqlite_busy_timeout_ms}
        return {"max_size": self.database_pool_size, "busy_wait_s": self.database_busy_wait_seconds}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings once; a bad or missing value stops the process with a clear message."""
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config file {config_file} does not exist")
        os.environ[CONFIG_FILE_ENV] = str(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_problem(os.environ.get(CONFIG_FILE_ENV, "?"), exc)) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings (env prefix PUSHSYNC_): {problems}") from None


def _toml_problem(path: str, exc: tomllib.TOMLDecodeError) -> str:
    """tomllib ends its message with "(at line L, column C)": put the place first."""
    message = str(exc)
    place = re.search(r"\(at line (\d+), column (\d+)\)$", message)
    if place is None:
        return f"config file {path}: not valid TOML: {message}"
    what = message[: place.start()].strip()
    return f"config file {path}, line {place[1]}, column {place[2]}: not valid TOML: {what}"


def export_flags(**flags: Any) -> None:
    """Command-line flags as the `PUSHSYNC_` variables they stand for, so that a child process
    (a receiver worker) reads the same sources as its parent: the environment and the config
    file (`load_settings` exports its path). No setting travels any other way."""
    for name, value in flags.items():
        if value is not None:
            os.environ[f"PUSHSYNC_{name.upper()}"] = str(value)
