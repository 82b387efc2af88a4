"""Machine states: the five the OEE model knows, read from a state tag or derived from signals.

A PLC usually exposes a state code (0 = stopped, 1 = running ...); where it does not, simple rules
on signals a machine already sends (spindle speed, load) tell running from idle. Either way the
result is a list of *state changes* ``(ts, state)``: a state holds until the next change, which is
how PLCs report it and keeps a year of 1-minute states small.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from axhub.core.errors import AxHubError


class MachineState(StrEnum):
    RUNNING = "running"
    IDLE = "idle"
    SETUP = "setup"
    DOWN = "down"
    PLANNED_STOP = "planned_stop"
    # No reading tells what the machine did (link down, logger off); counted as a loss, not hidden.
    UNKNOWN = "unknown"


STOP_STATES = (MachineState.IDLE, MachineState.DOWN, MachineState.SETUP)

# The common PackML-like coding; a machine's own map overrides it.
DEFAULT_STATE_CODES: dict[int, MachineState] = {
    0: MachineState.DOWN,
    1: MachineState.RUNNING,
    2: MachineState.IDLE,
    3: MachineState.SETUP,
    4: MachineState.PLANNED_STOP,
}

_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
}


@dataclass(frozen=True)
class StateRule:
    """``state`` holds while every condition ``(signal, op, value)`` holds; rules are tried in order."""

    state: MachineState
    conditions: tuple[tuple[str, str, float], ...]

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> StateRule:
        try:
            state = MachineState(str(raw["state"]))
            conds_raw = raw.get("when") or []
            if not isinstance(conds_raw, list):
                raise TypeError("'when' must be a list")
            conds = tuple((str(c["signal"]), str(c["op"]), float(c["value"])) for c in conds_raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise AxHubError(
                f"invalid state rule {dict(raw)!r}",
                hint="a rule is {'state': 'running', "
                "'when': [{'signal': 'spindle_speed', 'op': '>', 'value': 100}]}",
            ) from exc
        for _, op, _ in conds:
            if op not in _OPS:
                raise AxHubError(f"unknown comparison {op!r} in a state rule", hint="use >, >=, <, <= or ==")
        return cls(state=state, conditions=conds)


def changes_only(ts: np.ndarray, states: Sequence[str] | np.ndarray) -> pd.DataFrame:
    """Collapse a sampled state series to its changes (columns ts, state)."""
    frame = pd.DataFrame({"ts": ts, "state": np.asarray(states, dtype=object)})
    if frame.empty:
        return frame
    keep = frame["state"].ne(frame["state"].shift())
    return frame.loc[keep].reset_index(drop=True)


def states_from_codes(
    ts: np.ndarray, codes: np.ndarray, code_map: Mapping[int, MachineState] | None = None
) -> pd.DataFrame:
    """State changes from a state tag's readings; codes not in the map become ``unknown``."""
    mapping = dict(code_map or DEFAULT_STATE_CODES)
    names = [mapping.get(int(c), MachineState.UNKNOWN).value if np.isfinite(c) else "unknown" for c in codes]
    return changes_only(ts, names)


def states_from_rules(
    wide: pd.DataFrame, rules: Sequence[StateRule], default: MachineState = MachineState.IDLE
) -> pd.DataFrame:
    """State changes from signals (a wide frame indexed by ts): the first rule that holds wins."""
    if wide.empty:
        return pd.DataFrame({"ts": [], "state": []})
    result = np.full(len(wide), default.value, dtype=object)
    decided = np.zeros(len(wide), dtype=bool)
    for rule in rules:
        holds = np.ones(len(wide), dtype=bool)
        for signal, op, value in rule.conditions:
            if signal not in wide.columns:
                raise AxHubError(
                    f"state rule uses signal {signal!r}, which this machine does not have",
                    hint=f"choose one of: {', '.join(map(str, wide.columns))}",
                )
            column = wide[signal].to_numpy(dtype=float)
            holds &= np.nan_to_num(_OPS[op](column, value), nan=False).astype(bool)
        take = holds & ~decided
        result[take] = rule.state.value
        decided |= take
    return changes_only(wide.index.to_numpy(), result)
