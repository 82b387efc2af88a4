"""What a recommendation may never do: leave the bounds, move too far at once, enter a forbidden
box, or stray from settings the process has actually run (the trust region).

The same check runs when a recommendation is made and again, on the hub, just before a
setpoint is written (limits can change between the two).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from axhub.core.errors import AxHubError

Settings = Mapping[str, float]


@dataclass(frozen=True)
class ProcessLimits:
    """The engineer's envelope for one process (one entry per setpoint in ``bounds``)."""

    bounds: dict[str, tuple[float, float]]
    max_step: dict[str, float] = field(default_factory=dict)
    forbidden: list[dict[str, tuple[float, float]]] = field(default_factory=list)
    # Largest distance (on settings scaled to [0, 1] by the bounds) from a validated setting.
    trust_radius: float = 0.25

    @property
    def names(self) -> list[str]:
        return list(self.bounds)

    def scale(self, settings: Settings) -> list[float]:
        return [(settings[n] - lo) / (hi - lo) for n, (lo, hi) in self.bounds.items()]

    def in_forbidden(self, settings: Settings) -> bool:
        return any(all(lo <= settings[n] <= hi for n, (lo, hi) in box.items()) for box in self.forbidden)

    def distance_to(self, settings: Settings, validated: Sequence[Settings]) -> float:
        """Scaled Euclidean distance to the nearest validated setting (inf when none)."""
        x = self.scale(settings)
        return min(
            (math.dist(x, self.scale(v)) for v in validated),
            default=math.inf,
        )

    def step_box(self, current: Settings) -> dict[str, tuple[float, float]]:
        """Bounds intersected with the allowed step around ``current``."""
        box = {}
        for n, (lo, hi) in self.bounds.items():
            step = self.max_step.get(n)
            if step is None:
                box[n] = (lo, hi)
            else:
                box[n] = (max(lo, current[n] - step), min(hi, current[n] + step))
        return box

    def violations(
        self,
        settings: Settings,
        current: Settings | None = None,
        validated: Sequence[Settings] | None = None,
        *,
        tol: float = 1e-9,
    ) -> list[str]:
        """Every rule ``settings`` breaks, in words an engineer can act on (empty: allowed)."""
        problems = []
        for n, (lo, hi) in self.bounds.items():
            if n not in settings or not math.isfinite(settings[n]):
                problems.append(f"{n}: missing or not a number")
                continue
            if not lo - tol <= settings[n] <= hi + tol:
                problems.append(f"{n}={settings[n]:g} outside [{lo:g}, {hi:g}]")
            step = abs(settings[n] - current[n]) if current and n in current else 0.0
            if n in self.max_step and step > self.max_step[n] + tol:
                problems.append(
                    f"{n}: step {step:g} from {current[n] if current else 0:g} exceeds {self.max_step[n]:g}"
                )
        unknown = set(settings) - set(self.bounds)
        problems += [f"{n}: not a known setpoint" for n in sorted(unknown)]
        if problems:
            return problems
        if self.in_forbidden(settings):
            problems.append("inside a forbidden region")
        if validated:
            d = self.distance_to(settings, validated)
            if d > self.trust_radius + tol:
                problems.append(
                    f"outside the trust region ({d:.3f} from validated data > {self.trust_radius:g})"
                )
        return problems

    def to_json(self) -> dict[str, Any]:
        return {
            "bounds": {n: list(b) for n, b in self.bounds.items()},
            "max_step": dict(self.max_step),
            "forbidden": [{n: list(b) for n, b in box.items()} for box in self.forbidden],
            "trust_radius": self.trust_radius,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessLimits:
        """Limits from JSON (an API body or a stored cell); refuses what would misbehave later."""
        try:
            limits = cls(
                bounds={str(n): (float(b[0]), float(b[1])) for n, b in dict(data["bounds"]).items()},
                max_step={str(n): float(v) for n, v in dict(data.get("max_step", {})).items()},
                forbidden=[
                    {str(n): (float(b[0]), float(b[1])) for n, b in dict(box).items()}
                    for box in data.get("forbidden", [])
                ],
                trust_radius=float(data.get("trust_radius", 0.25)),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise AxHubError(
                f"process limits are not valid: {type(exc).__name__} {exc}",
                hint="bounds: {name: [low, high]}, max_step: {name: step}, "
                "forbidden: [{name: [low, high]}], trust_radius: number",
            ) from exc
        problems = []
        if not limits.bounds:
            problems.append("no setpoint in bounds")
        for n, (lo, hi) in limits.bounds.items():
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                problems.append(f"bounds of {n}: need finite low < high")
        for n, step in limits.max_step.items():
            if n not in limits.bounds or not (math.isfinite(step) and step > 0):
                problems.append(f"max_step of {n}: need a known setpoint and a step > 0")
        for box in limits.forbidden:
            if not box or set(box) - set(limits.bounds):
                problems.append("forbidden region: name known setpoints only")
        if not (math.isfinite(limits.trust_radius) and limits.trust_radius > 0):
            problems.append("trust_radius: need a number > 0")
        if problems:
            raise AxHubError("process limits are not valid: " + "; ".join(problems))
        return limits
