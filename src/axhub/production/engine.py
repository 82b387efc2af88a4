"""The OEE time accounting in one DuckDB query, the same for one machine and for a whole complex.

Every input is a stream of events per machine: state changes, shift windows opening and closing,
planned downtime opening and closing, and operator-entered downtime reasons opening and closing.
Sorted per machine, each event starts a segment that lasts until the next event; carrying the
last state, window, planned-downtime flag and reason forward (``last_value ... IGNORE NULLS``)
gives each segment its context, and summing segment lengths by context is the whole time model
of ISO 22400. It is one sort per machine, linear in the number of events, with no interval join;
ties are ordered so that a window closes before the next one opens. Part counts need no context
but their window, so an as-of join places them.
"""

from __future__ import annotations

import duckdb
import pandas as pd

# Column layout of each input (all times UTC microseconds).
STATES_COLUMNS = ("asset", "ts_us", "state")
WINDOWS_COLUMNS = ("asset", "start_us", "end_us", "period")
PLANNED_COLUMNS = ("asset", "start_us", "end_us")
REASONS_COLUMNS = ("asset", "start_us", "end_us", "reason")
COUNTS_COLUMNS = ("asset", "ts_us", "good", "scrap", "ideal_s")

SEGMENTS_SQL = """
WITH runs AS (
    SELECT asset, ts_us AS t, state,
           -- the last run has no end yet: never a micro-stoppage (and never NULL, see below)
           coalesce(lead(ts_us) OVER (PARTITION BY asset ORDER BY ts_us) - ts_us,
                    9223372036854775807) AS run_us
    FROM states
),
ev AS (
    SELECT asset, t, 2 AS seq, state, NULL::VARCHAR AS period, NULL::INTEGER AS pdf,
           NULL::VARCHAR AS reason, run_us
      FROM runs
    UNION ALL SELECT asset, end_us, 0, NULL, '', NULL, NULL, NULL FROM windows
    UNION ALL SELECT asset, start_us, 1, NULL, period, NULL, NULL, NULL FROM windows
    UNION ALL SELECT asset, end_us, 0, NULL, NULL, 0, NULL, NULL FROM planned
    UNION ALL SELECT asset, start_us, 1, NULL, NULL, 1, NULL, NULL FROM planned
    UNION ALL SELECT asset, end_us, 0, NULL, NULL, NULL, '', NULL FROM reasons
    UNION ALL SELECT asset, start_us, 1, NULL, NULL, NULL, reason, NULL FROM reasons
),
seg AS (
    SELECT asset, t, state AS started, run_us,
           last_value(state IGNORE NULLS) OVER w AS state_c,
           last_value(period IGNORE NULLS) OVER w AS period_c,
           last_value(pdf IGNORE NULLS) OVER w AS pd_c,
           last_value(reason IGNORE NULLS) OVER w AS reason_c,
           last_value(run_us IGNORE NULLS) OVER w AS run_c,
           lead(t) OVER (PARTITION BY asset ORDER BY t, seq) AS t_next
    FROM ev
    WINDOW w AS (PARTITION BY asset ORDER BY t, seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
timed AS (
    SELECT asset,
           period_c AS period,
           coalesce(state_c, 'unknown') AS state,
           coalesce(pd_c, 0) = 1 OR coalesce(state_c, '') = 'planned_stop' AS planned,
           coalesce(reason_c, '') AS reason,
           coalesce(state_c IN ('idle', 'down') AND run_c < $micro_us, FALSE) AS micro,
           coalesce(sum(t_next - t), 0)::BIGINT AS duration_us,
           count(*) FILTER (WHERE started IN ('idle', 'down') AND run_us < $micro_us) AS micro_stops
    FROM seg
    WHERE period_c IS NOT NULL AND period_c <> ''
    GROUP BY ALL
),
-- Counts need no state: each is assigned to the window it falls in by an as-of join.
counted AS (
    SELECT c.asset, w.period,
           sum(c.good) AS good,
           sum(c.scrap) AS scrap,
           sum(c.ideal_s * (c.good + c.scrap)) AS ideal_time_s,
           sum(c.ideal_s * c.scrap) AS scrap_ideal_s
    FROM counts c ASOF JOIN windows w ON c.asset = w.asset AND c.ts_us >= w.start_us
    WHERE c.ts_us < w.end_us
    GROUP BY ALL
)
SELECT asset, period, state, planned, reason, micro, duration_us, micro_stops,
       0.0 AS good, 0.0 AS scrap, 0.0 AS ideal_time_s, 0.0 AS scrap_ideal_s
FROM timed
UNION ALL
SELECT asset, period, 'running', FALSE, '', FALSE, 0, 0, good, scrap, ideal_time_s, scrap_ideal_s
FROM counted
"""

# Sums per group over the segments (``{keys}`` and an optional join that maps assets to groups):
# a whole complex is aggregated inside DuckDB, never materialised row by row in Python.
TOTALS_SQL = """
SELECT {keys},
       sum(duration_us) / 1e6 AS planned_operation_s,
       coalesce(sum(duration_us) FILTER (WHERE planned), 0) / 1e6 AS planned_down_s,
       coalesce(sum(duration_us) FILTER (WHERE NOT planned AND state = 'running'), 0) / 1e6 AS production_s,
       coalesce(sum(duration_us) FILTER (WHERE NOT planned AND state = 'down'), 0) / 1e6 AS down_s,
       coalesce(sum(duration_us) FILTER (WHERE NOT planned AND state = 'setup'), 0) / 1e6 AS setup_s,
       coalesce(sum(duration_us) FILTER (WHERE NOT planned AND state = 'idle'), 0) / 1e6 AS idle_s,
       coalesce(sum(duration_us) FILTER (WHERE NOT planned AND state = 'unknown'), 0) / 1e6 AS unknown_s,
       coalesce(sum(duration_us) FILTER (WHERE NOT planned AND micro), 0) / 1e6 AS micro_stop_s,
       sum(micro_stops) AS micro_stops,
       sum(good) AS good,
       sum(scrap) AS scrap,
       sum(ideal_time_s) AS ideal_time_s
FROM ({segments}) seg {join}
GROUP BY {keys}
"""


def empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c.endswith("_us") else object) for c in columns})


def segments(
    con: duckdb.DuckDBPyConnection,
    *,
    states: object,
    windows: object,
    planned: object,
    reasons: object,
    counts: object,
    micro_stop_s: float = 120.0,
) -> pd.DataFrame:
    """Durations and counts per (asset, period, state, planned, reason, micro).

    ``micro`` marks time inside a stop (idle or down) shorter than ``micro_stop_s``: the loss Pareto
    lists it as micro-stoppages instead of under its state.

    Each input is a pandas frame, an Arrow table or a DuckDB relation with the columns above
    (``*_COLUMNS``); windows must not overlap within one asset.
    """
    for name, value in (
        ("states", states),
        ("windows", windows),
        ("planned", planned),
        ("reasons", reasons),
        ("counts", counts),
    ):
        con.register(name, value)
    try:
        return con.execute(SEGMENTS_SQL, {"micro_us": int(micro_stop_s * 1_000_000)}).df()
    finally:
        for name in ("states", "windows", "planned", "reasons", "counts"):
            con.unregister(name)


def totals(
    con: duckdb.DuckDBPyConnection,
    keys: list[str],
    *,
    join: str = "",
    micro_stop_s: float = 120.0,
) -> pd.DataFrame:
    """Time and count sums per group of ``keys`` over inputs already registered (or views) on
    ``con`` under the names states, windows, planned, reasons and counts. ``join`` may bring in
    a table mapping ``asset`` to groups (e.g. ``JOIN machines USING (asset)``)."""
    sql = TOTALS_SQL.format(keys=", ".join(keys), segments=SEGMENTS_SQL, join=join)
    return con.execute(sql, {"micro_us": int(micro_stop_s * 1_000_000)}).df()
