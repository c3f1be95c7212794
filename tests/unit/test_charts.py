"""The status page's charts: a missing minute breaks the line, the scale is a round number,
and what is written into the SVG is escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pushsync.admin.charts import Series, chart, nice_ceiling

END = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
START = END - timedelta(hours=24)


def minute(n: int) -> datetime:
    return END - timedelta(minutes=n)


def test_a_missing_minute_breaks_the_line() -> None:
    points = [(minute(10), 1.0), (minute(9), 2.0), (minute(5), 3.0), (minute(4), None)]
    svg = chart("rows", [Series("arrived", "#123456", points)], START, END)
    assert svg.count("<polyline") == 1  # minutes 10 and 9
    assert svg.count("<circle") == 1  # minute 5 alone
    assert 'data-points="3"' in svg
    assert "peak 3" in svg and "<b>3</b>" in svg


def test_no_samples_say_so() -> None:
    svg = chart("rows", [Series("arrived", "#123456", [])], START, END)
    assert "no samples in the last 24 h" in svg and 'data-points="0"' in svg


def test_the_scale_is_a_round_number() -> None:
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 3, 7, 12, 250)] == [1, 0.5, 1, 5, 10, 20, 500]


def test_names_are_escaped() -> None:
    svg = chart("<b>", [Series("<script>", "#123456", [(minute(1), 1.0)])], START, END)
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;" in svg
