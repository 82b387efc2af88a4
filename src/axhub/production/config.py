"""Setting up a machine and a site for OEE: one validation behind the API, the CLI and the demo."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from axhub.core.errors import AxHubError
from axhub.production.shifts import Shift
from axhub.production.states import MachineState, StateRule
from axhub.store.models import AssetRow, ProductionConfigRow, ShiftCalendarRow, SiteRow
from axhub.store.scoped import OrgScope

DEFAULTS: dict[str, Any] = {
    "state_source": "none",
    "state_signal": None,
    "state_codes": {},
    "state_rules": [],
    "good_signal": None,
    "scrap_signal": None,
    "count_mode": "increment",
    "ideal_cycle_s": 60.0,
    "micro_stop_s": 120.0,
}


def configure_machine(scope: OrgScope, asset: AssetRow, values: Mapping[str, Any]) -> ProductionConfigRow:
    """Create or replace the machine's production config after checking it makes sense."""
    unknown = set(values) - set(DEFAULTS)
    if unknown:
        raise AxHubError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values = {**DEFAULTS, **values}
    source = values["state_source"]
    if source not in ("tag", "rules", "none"):
        raise AxHubError(f"state source {source!r} is not one of tag, rules, none")
    if source == "tag" and not values.get("state_signal"):
        raise AxHubError("a state tag needs its signal", hint="name the signal that carries the state code")
    rules = values["state_rules"] or []
    if source == "rules" and not rules:
        raise AxHubError("deriving states needs at least one rule")
    for rule in rules:
        StateRule.from_dict(rule)
    for code, name in (values["state_codes"] or {}).items():
        if not str(code).lstrip("-").isdigit():
            raise AxHubError(f"state code {code!r} is not an integer")
        MachineState(name)
    if values["count_mode"] not in ("increment", "cumulative"):
        raise AxHubError("count mode must be increment or cumulative")
    if float(values["ideal_cycle_s"]) <= 0:
        raise AxHubError("the ideal cycle time must be positive")
    row = scope.find(ProductionConfigRow, asset_id=asset.id) or scope.add(
        ProductionConfigRow(asset_id=asset.id)
    )
    for key, value in values.items():
        setattr(row, key, value)
    scope.session.flush()
    return row


def set_shifts(scope: OrgScope, site: SiteRow, shifts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Replace the site's shift calendar; returns the shifts as stored."""
    parsed = [Shift.from_dict(s).to_dict() for s in shifts]
    if len({s["name"] for s in parsed}) != len(parsed):
        raise AxHubError("two shifts share a name", hint="give each shift its own name")
    row = scope.find(ShiftCalendarRow, site_id=site.id) or scope.add(ShiftCalendarRow(site_id=site.id))
    row.shifts = parsed
    scope.session.flush()
    return parsed
