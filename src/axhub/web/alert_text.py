"""An alert's title in the page's language, built from what the alert stores (its kind, machine
and explanation), never from the English ``title`` kept for logs and old clients."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

MAX_SIGNALS = 3


def alert_title(
    alert: Any,
    machine: str,
    signal_names: Mapping[str, str] | None,
    t: Callable[..., str],
) -> str:
    """'프레스 1호기: 진동, 온도 평소와 다름' / 'Press 1: unusual vibration, temperature'."""
    names = signal_names or {}
    items = [e for e in (alert.explanation or []) if isinstance(e, dict) and e.get("signal")]
    shown = [names.get(str(e["signal"]), str(e["signal"])) for e in items[:MAX_SIGNALS]]
    if alert.kind == "rule" and items:
        first = items[0]
        if "rate_per_s" in first:
            return t("atitle.rate", machine=machine, signal=shown[0])
        if "limit" in first and "value" in first:
            key = "atitle.above" if float(first["value"]) > float(first["limit"]) else "atitle.below"
            return t(key, machine=machine, signal=shown[0])
    if shown:
        return t("atitle.model", machine=machine, signals=", ".join(shown))
    return t("atitle.generic", machine=machine, kind=t("alerts.kind_" + str(alert.kind)))


def signal_labels(signals: list[Any], locale: str) -> dict[str, dict[str, str]]:
    """{asset_id: {signal id: display name}} for the page's language."""
    from axhub.web.names import display_name

    out: dict[str, dict[str, str]] = {}
    for s in signals:
        out.setdefault(s.asset_id, {})[s.name] = display_name(s, locale)
    return out
