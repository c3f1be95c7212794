"""The Prometheus rules of deploy/prometheus, read by tests: a rule of the simple form
`metric{label="value", …} == N` (or > N) is evaluated against an admin listener's /metrics text,
so a test can say that the alert would fire, and would not, without a Prometheus server."""

from __future__ import annotations

import re
from pathlib import Path

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "pushsync-alerts.yml"
_RULE = re.compile(r"- alert: (\w+)\n(?:\s+#.*\n)*\s+expr: (.+)\n")
_SIMPLE = re.compile(r"^(\w+)\{(.*)\} (==|>) (\S+)$")


def expression(alert: str) -> str:
    rules = dict(_RULE.findall(RULES.read_text()))
    return rules[alert].strip()


def firing(alert: str, metrics: str) -> list[dict[str, str]]:
    """The label sets of the samples for which the alert's expression holds."""
    match = _SIMPLE.match(expression(alert))
    assert match, f"{alert}: not a simple selector and comparison: {expression(alert)}"
    name, selector, operator, threshold = match.groups()
    wanted = dict(re.findall(r'(\w+)="([^"]*)"', selector))
    hits = []
    for labels, value in re.findall(rf"^{name}\{{(.*)\}} (\S+)$", metrics, re.MULTILINE):
        named = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        holds = (
            float(value) == float(threshold)
            if operator == "=="
            else float(value) > float(threshold)
        )
        if wanted.items() <= named.items() and holds:
            hits.append(named)
    return hits
