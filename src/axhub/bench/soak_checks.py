"""The soak's judgements, kept apart from the processes that produce their inputs.

* ``count_opcua``: each OPC UA change the server made, by whether a subscription was alive
  when it was made. Changes made while the server restarts, and while a client that could not
  take its subscription over reconnects, are queued nowhere, so the server never delivers
  them: counted apart from loss. A worker that was SIGKILLed and took its subscription over
  when it started again (``OPC UA resumed subscription``, see ``connectors/opcua_resume``)
  left the subscription alive on the server, which queued the changes meanwhile: those, like
  every change made while subscribed, must be stored.
* ``rss_verdict``: the slope of the worker's RSS over one long life (least squares, after a
  warm-up), in MB per 10 minutes, against a bound stated before the run.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

# "2026-12-05 22:35:19,123 INFO axhub.ingest.connectors.opcua: OPC UA subscribed to ..."
_SUBSCRIBED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO \S+: OPC UA subscribed to ")
# "... INFO axhub.ingest.connectors.opcua: OPC UA resumed subscription 952795 to ..."
_RESUMED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO \S+: OPC UA resumed subscription ")


def subscribed_times(log_text: str, pattern: re.Pattern[str] = _SUBSCRIBED) -> list[float]:
    """Wall-clock times (epoch s, the worker's local time zone) of its OPC UA subscriptions."""
    times = []
    for line in log_text.splitlines():
        m = pattern.match(line)
        if m:
            when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp()  # local time
            times.append(when + int(m.group(2)) / 1000)
    return sorted(times)


def resumed_times(log_text: str) -> list[float]:
    """Wall-clock times (epoch s) at which the worker took its subscription over."""
    return subscribed_times(log_text, _RESUMED)


def bridged_kills(
    kills: Iterable[float], subscribed: Iterable[float], resumed: Iterable[float]
) -> set[float]:
    """SIGKILLs after which the next worker took the subscription over (the first subscription
    event after the kill is a resumption): the subscription lived on through them."""
    events = sorted([(t, False) for t in subscribed] + [(t, True) for t in resumed])
    times = [t for t, _r in events]
    out = set()
    for kill in kills:
        i = bisect.bisect_right(times, kill)
        if i < len(events) and events[i][1]:
            out.add(kill)
    return out


def count_opcua(
    ticks_ms: Iterable[int],
    n_tags: int,
    stored_per_tick: Mapping[int, int],
    subscribed: Iterable[float],
    server_stops: Iterable[float],
    kills: Iterable[float] = (),
    edge_s: float = 0.5,
    resumed: Iterable[float] = (),
) -> dict[str, Any]:
    """Count a server's changes (``n_tags`` per tick, ticks by source timestamp in ms).

    A tick was made *while subscribed* when the latest event before it is a subscription
    (``subscribed``, epoch s) rather than a disruption (a server stop or a worker SIGKILL,
    epoch s). A SIGKILL after which the subscription was taken over (``resumed``, epoch s) is
    no disruption: the server kept the subscription and queued its changes. Missing changes of
    ticks made while subscribed are lost; those within ``edge_s`` before the next server stop
    or SIGKILL are also counted by its kind (before a server stop: the server had not
    published them yet; before a SIGKILL: the worker had them in memory only). Changes of
    the other ticks were not delivered by the server, except what it sent as the current
    value on subscribing.
    """
    stop_list, kill_list, resumed_list = list(server_stops), list(kills), list(resumed)
    subscribed = list(subscribed)
    bridged = bridged_kills(kill_list, subscribed, resumed_list)
    disruptions = stop_list + [k for k in kill_list if k not in bridged]
    events = sorted([(t, 1) for t in subscribed + resumed_list] + [(t, 0) for t in disruptions])
    times = [t for t, _kind in events]
    stops = sorted([(t, "server_stop") for t in stop_list] + [(t, "sigkill") for t in kill_list])
    stop_times = [t for t, _kind in stops]
    edge = {"server_stop": 0, "sigkill": 0}
    made = made_subscribed = stored = stored_subscribed = 0
    ticks = sorted(set(ticks_ms))
    for tick in ticks:
        t = tick / 1000
        got = min(int(stored_per_tick.get(tick, 0)), n_tags)
        made += n_tags
        stored += got
        i = bisect.bisect_right(times, t) - 1
        if i >= 0 and events[i][1] == 1:
            made_subscribed += n_tags
            stored_subscribed += got
            j = bisect.bisect_right(stop_times, t)
            if j < len(stops) and stops[j][0] - t <= edge_s:
                edge[stops[j][1]] += n_tags - got
    # Readings that match no change the server made, or more than one per tag: must be 0.
    known = set(ticks)
    extra = sum(v if k not in known else max(v - n_tags, 0) for k, v in stored_per_tick.items())
    return {
        "changes_made": made,
        "stored": stored,
        "made_while_subscribed": made_subscribed,
        "stored_of_those": stored_subscribed,
        "lost_while_subscribed": made_subscribed - stored_subscribed,
        "lost_just_before_server_stop": edge["server_stop"],
        "lost_just_before_sigkill": edge["sigkill"],
        "lost_otherwise": made_subscribed - stored_subscribed - edge["server_stop"] - edge["sigkill"],
        "made_while_not_subscribed": made - made_subscribed,
        "stored_of_those_as_current_value": stored - stored_subscribed,
        "not_delivered_by_server": (made - made_subscribed) - (stored - stored_subscribed),
        "stored_not_made": extra,
    }


def rss_verdict(
    samples: Iterable[tuple[float, float]],
    warm_s: float,
    bound_mb_per_10min: float,
    min_span_s: float = 300.0,
) -> dict[str, Any]:
    """Least-squares slope of RSS (MB) over seconds into a life, from ``warm_s`` in.

    ``flat`` when |slope| <= bound; ``not judged`` when the life after warm-up is shorter
    than ``min_span_s`` (a slope over a minute or two says nothing about a leak).
    """
    pts = [(t, mb) for t, mb in samples if t >= warm_s]
    span = (pts[-1][0] - pts[0][0]) if len(pts) >= 2 else 0.0
    out: dict[str, Any] = {
        "samples": len(pts),
        "span_s": span,
        "warm_s": warm_s,
        "bound_mb_per_10min": bound_mb_per_10min,
    }
    if span < min_span_s or len(pts) < 3:
        return {
            **out,
            "slope_mb_per_10min": float("nan"),
            "ci95_mb_per_10min": float("nan"),
            "verdict": "not judged",
        }
    t = np.asarray([p[0] for p in pts], dtype=float)
    y = np.asarray([p[1] for p in pts], dtype=float)
    slope, intercept = np.polyfit(t, y, 1)
    resid = y - (slope * t + intercept)
    se = float(np.sqrt(resid @ resid / (len(t) - 2) / ((t - t.mean()) @ (t - t.mean()))))
    per10 = float(slope) * 600
    return {
        **out,
        "slope_mb_per_10min": per10,
        "ci95_mb_per_10min": 1.96 * se * 600,
        "first_mb": float(y[0]),
        "last_mb": float(y[-1]),
        "max_mb": float(y.max()),
        "verdict": "flat" if abs(per10) <= bound_mb_per_10min else "grows",
    }
