"""The deployment files in deploy/ hold together with the code they deploy: the systemd units
and the container run commands the CLI has, their settings file names real settings, and every
metric the Prometheus rules use is served by a real admin listener's /metrics."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import httpx

from pushsync.settings import Settings
from tests.acceptance.alert_rules import expression, firing
from tests.acceptance.conftest import run_pushsync

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def _runs(command: list[str]) -> None:
    """The command a unit or the container starts exists: its --help answers."""
    assert command[0] == "pushsync" or command[0].endswith("/bin/pushsync"), command
    run_pushsync(*command[1:], "--help")


def test_the_units_start_commands_the_cli_has_and_stop_them_with_sigterm() -> None:
    for name, command in (
        ("pushsync-serve.service", ["serve"]),
        ("pushsync-worker.service", ["worker"]),
        ("pushsync-ipranges.service", ["ipranges", "refresh"]),
    ):
        service = _unit(name)["Service"]
        start = shlex.split(service["ExecStart"])
        assert start[1:] == command, name
        _runs(start)
        assert service["EnvironmentFile"] == "/etc/pushsync/pushsync.env"
        assert service.get("KillSignal", "SIGTERM") == "SIGTERM"
    timer = _unit("pushsync-ipranges.timer")
    assert timer["Timer"]["Unit"] == "pushsync-ipranges.service"
    assert "h" in timer["Timer"]["OnUnitActiveSec"]


def test_the_settings_file_names_only_real_settings() -> None:
    lines = (DEPLOY / "systemd" / "pushsync.env.example").read_text().splitlines()
    keys = [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]
    fields = {f"PUSHSYNC_{name.upper()}" for name in Settings.model_fields}
    assert keys and set(keys) <= fields, set(keys) - fields


def test_the_container_runs_the_cli_and_copies_what_exists() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    for sources in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for source in sources.split():
            assert (REPO / source).exists(), source
    entry = re.search(r'^ENTRYPOINT \["(\w+)"\]', text, re.MULTILINE)
    command = re.search(r'^CMD \["(\w+)"\]', text, re.MULTILINE)
    assert entry and command
    _runs([entry[1], command[1]])
    assert "STOPSIGNAL SIGTERM" in text


def test_every_metric_the_alert_rules_use_is_served(server_factory) -> None:
    server = server_factory()
    metrics = httpx.get(f"http://127.0.0.1:{server.admin_port}/metrics", timeout=10).text
    served = set(re.findall(r"^(?:# TYPE )?(pushsync_\w+)", metrics, re.MULTILINE))
    rules = (DEPLOY / "prometheus" / "pushsync-alerts.yml").read_text()
    expressions = re.findall(r"^\s+expr: (.+)$", rules, re.MULTILINE)
    used = {name for expr in expressions for name in re.findall(r"\bpushsync_\w+", expr)}
    assert len(expressions) >= 4 and used
    assert used <= served | {f"{name}_total" for name in served}, used - served
    labels = set(re.findall(r'pushsync_rooms\{status="([^"]+)"', metrics))
    assert "in sync" in labels  # the label value the out-of-sync rule excludes


def test_the_worker_down_alert_fires_on_the_heartbeat_of_a_worker_never_started(
    server_factory,
) -> None:
    assert "pushsync_process_up" in expression("PushsyncWorkerDown")
    server = server_factory(pushsync_rooms="room-1@contoso.example")
    metrics = httpx.get(f"http://127.0.0.1:{server.admin_port}/metrics", timeout=10).text
    assert firing("PushsyncWorkerDown", metrics) == [
        {"host": "", "kind": "worker", "protocol": "ews"}
    ]
    assert firing("PushsyncSubscriptionManagerDown", metrics)  # run by the same command
