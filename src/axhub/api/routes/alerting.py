"""Investigating an alert (signals as reading vs normal range, a chart window, notes), resolving
it, user-defined limit and rate-of-change rules, and notification channels (webhook, e-mail)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from axhub.api.deps import AdminScope, ReadScope, Writer, WriteScope
from axhub.api.errors import ERROR_RESPONSES, request_lang
from axhub.api.schemas.alerting import (
    AckIn,
    AlertDetailOut,
    AssetBrief,
    ChannelIn,
    ChannelOut,
    ChannelTestOut,
    ChannelUpdate,
    NoteIn,
    NoteOut,
    RuleIn,
    RuleOut,
    RuleUpdate,
    SignalExplained,
)
from axhub.api.schemas.common import Deleted
from axhub.api.schemas.ops import AlertOut
from axhub.core import secret_box
from axhub.core.timeutil import utcnow
from axhub.serve.explain import describe
from axhub.store.models import (
    AlertNoteRow,
    AlertRow,
    AlertRuleRow,
    AssetRow,
    NotificationChannelRow,
    SignalRow,
)
from axhub.store.scoped import OrgScope

alert_actions = APIRouter(prefix="/alerts", tags=["alerts"], responses=ERROR_RESPONSES)
rules = APIRouter(prefix="/rules", tags=["rules"], responses=ERROR_RESPONSES)
channels = APIRouter(prefix="/notifications/channels", tags=["notifications"], responses=ERROR_RESPONSES)
_SEVERITY_KO = {"info": "정보", "warning": "경고", "critical": "심각"}


def add_note(scope: OrgScope, alert: AlertRow, author: str, text: str) -> AlertNoteRow:
    return scope.add(AlertNoteRow(alert_id=alert.id, author=author, text=text))


def _notes(scope: OrgScope, alert_id: str) -> list[NoteOut]:
    rows = scope.list(AlertNoteRow, alert_id=alert_id, order_by=AlertNoteRow.created_at)
    return [NoteOut.model_validate(r) for r in rows]


def _title(alert: AlertRow, asset_name: str, lang: str) -> str:
    names = ", ".join(str(e.get("signal")) for e in (alert.explanation or [])[:3])
    if alert.kind == "rule":
        rule = alert.source.split(":", 1)[0]
        word = {"limit": ("limit", "한계"), "rate": ("rate of change", "변화율")}.get(rule, (rule, rule))
        return (
            f"{asset_name}: {names} {word[1]} 규칙 위반"
            if lang == "ko"
            else f"{asset_name}: {names} broke its {word[0]} rule"
        )
    return (
        f"{asset_name} 이상 징후: {names}" if lang == "ko" else f"Unusual behaviour on {asset_name}: {names}"
    )


@alert_actions.get("/{alert_id}/explain", operation_id="explain_alert", response_model=AlertDetailOut)
def explain_alert(alert_id: str, request: Request, scope: ReadScope) -> AlertDetailOut:
    """Everything an alert page shows: the contributing signals (most off first) each as reading
    vs normal range in engineering units, a chart window around the alert, its notes; texts in
    the request's language (``?lang=`` or ``Accept-Language``)."""
    lang = request_lang(request)
    alert = scope.get(AlertRow, alert_id)
    asset = scope.find(AssetRow, id=alert.asset_id)
    brief = None
    display: dict[str, str] = {}
    if asset is not None:
        brief = AssetBrief(
            id=asset.id, slug=asset.slug, name=asset.name, timezone=scope.timezone_for_asset(asset)
        )
        # The signal's name in the page's language where one is kept (name_ko / name_en), else
        # the description a file mapping gave it.
        for sig in scope.list(SignalRow, asset_id=asset.id):
            shown = getattr(sig, f"name_{lang}", "") or sig.description
            if shown:
                display[sig.name] = shown
    signals = []
    for item in alert.explanation or []:
        entry: dict[str, Any] = dict(item)
        if "value" in entry and entry.get("value") is not None:
            text = describe(entry, lang)
        elif "rate_per_s" in entry:
            text = (
                f"{entry['rate_per_s']:+.4g}/s ("
                + ("한계" if lang == "ko" else "limit")
                + f" {entry.get('limit_per_s')})"
            )
        else:
            text = str(entry.get("signal"))
        signals.append(
            SignalExplained(
                signal=str(entry.get("signal")),
                display_name=display.get(str(entry.get("signal"))),
                value=entry.get("value"),
                unit=str(entry.get("unit") or ""),
                z=entry.get("z"),
                normal_mean=entry.get("normal_mean"),
                normal_std=entry.get("normal_std"),
                state=entry.get("state"),
                text=text,
            )
        )
    end = alert.last_seen_at or alert.ts
    margin = max(timedelta(minutes=30), (end - alert.ts) / 2)
    ratio = alert.score / alert.threshold if alert.score is not None and alert.threshold else None
    return AlertDetailOut(
        alert=AlertOut.model_validate(alert),
        asset=brief,
        title=_title(alert, asset.name if asset else alert.asset_id, lang),
        severity_ratio=ratio,
        signals=signals,
        window_start=alert.ts - margin,
        window_end=end + margin,
        notes=_notes(scope, alert.id),
    )


@alert_actions.post("/{alert_id}/resolve", operation_id="resolve_alert", response_model=AlertOut)
def resolve_alert(
    alert_id: str, scope: WriteScope, principal: Writer, body: Annotated[AckIn | None, Body()] = None
) -> AlertOut:
    """Mark an alert resolved (who and when are recorded; acknowledges it too), with a note."""
    row = scope.get(AlertRow, alert_id)
    now = utcnow()
    if row.acknowledged_at is None:
        row.acknowledged_by, row.acknowledged_at = principal.actor, now
    if row.resolved_at is None:
        row.resolved_by, row.resolved_at = principal.actor, now
    if body is not None and body.note:
        add_note(scope, row, principal.actor, body.note)
    scope.session.flush()
    return AlertOut.model_validate(row)


@alert_actions.get("/{alert_id}/notes", operation_id="list_alert_notes", response_model=list[NoteOut])
def list_alert_notes(alert_id: str, scope: ReadScope) -> list[NoteOut]:
    scope.get(AlertRow, alert_id)
    return _notes(scope, alert_id)


@alert_actions.post(
    "/{alert_id}/notes", operation_id="add_alert_note", response_model=NoteOut, status_code=201
)
def add_alert_note(alert_id: str, body: NoteIn, scope: WriteScope, principal: Writer) -> NoteOut:
    """Add a note to an alert (who and when are recorded)."""
    return NoteOut.model_validate(add_note(scope, scope.get(AlertRow, alert_id), principal.actor, body.text))


# ------------------------------------------------------------------ rules
@rules.get("", operation_id="list_rules", response_model=list[RuleOut])
def list_rules(
    scope: ReadScope, asset_id: Annotated[str | None, Query(max_length=40)] = None
) -> list[RuleOut]:
    """Limit and rate-of-change rules (applied by ``axhub run ingest`` and to uploaded files)."""
    filters: dict[str, Any] = {"asset_id": asset_id} if asset_id else {}
    found = scope.list(AlertRuleRow, order_by=AlertRuleRow.created_at, **filters)
    return [RuleOut.model_validate(r) for r in found]


@rules.post("", operation_id="create_rule", response_model=RuleOut, status_code=201)
def create_rule(body: RuleIn, scope: WriteScope, principal: Writer) -> RuleOut:
    scope.get(AssetRow, body.asset_id)
    row = AlertRuleRow(**body.model_dump(), created_by=principal.actor)
    return RuleOut.model_validate(scope.add(row))


@rules.patch("/{rule_id}", operation_id="update_rule", response_model=RuleOut)
def update_rule(rule_id: str, body: RuleUpdate, scope: WriteScope) -> RuleOut:
    row = scope.get(AlertRuleRow, rule_id)
    for key, value in body.model_dump(exclude_unset=True).items():
        setattr(row, key, value)
    scope.session.flush()
    return RuleOut.model_validate(row)


@rules.delete("/{rule_id}", operation_id="delete_rule", response_model=Deleted)
def delete_rule(rule_id: str, scope: WriteScope) -> Deleted:
    scope.delete(scope.get(AlertRuleRow, rule_id))
    return Deleted(id=rule_id)


# ------------------------------------------------------------------ notification channels
SECRET_FIELDS = {"password", "password_sealed"}  # never in an answer


def _channel_out(row: NotificationChannelRow) -> ChannelOut:
    out = ChannelOut.model_validate(row)
    out.settings = {k: v for k, v in row.settings.items() if k not in SECRET_FIELDS}
    out.settings["password_set"] = bool(row.settings.get("password_sealed") or row.settings.get("password"))
    return out


def _settings(body: ChannelIn | ChannelUpdate, old: dict[str, Any] | None = None) -> dict[str, Any]:
    settings = dict(old or {})
    if body.smtp is not None:
        smtp = body.smtp.model_dump()
        password = smtp.pop("password", None)
        settings.update(smtp)
        # Sealed with the hub's key, which is not in the database (core/secret_box.py). A change
        # without a password keeps the one stored (it is never sent back, so forms cannot echo it).
        if password is not None:
            settings["password_sealed"] = secret_box.current().seal(password)
            settings.pop("password", None)
    if isinstance(body, ChannelIn) and body.headers is not None:
        settings["headers"] = body.headers
    return settings


@channels.get("", operation_id="list_channels", response_model=list[ChannelOut])
def list_channels(scope: AdminScope) -> list[ChannelOut]:
    """Where new alerts are sent (organisation admins)."""
    return [
        _channel_out(r)
        for r in scope.list(NotificationChannelRow, order_by=NotificationChannelRow.created_at)
    ]


@channels.post("", operation_id="create_channel", response_model=ChannelOut, status_code=201)
def create_channel(body: ChannelIn, scope: AdminScope) -> ChannelOut:
    row = NotificationChannelRow(
        name=body.name,
        kind=body.kind,
        target=body.target,
        min_severity=body.min_severity,
        lang=body.lang,
        settings=_settings(body),
        enabled=body.enabled,
    )
    return _channel_out(scope.add(row))


@channels.patch("/{channel_id}", operation_id="update_channel", response_model=ChannelOut)
def update_channel(channel_id: str, body: ChannelUpdate, scope: AdminScope) -> ChannelOut:
    row = scope.get(NotificationChannelRow, channel_id)
    for key in ("name", "target", "min_severity", "lang", "enabled"):
        value = getattr(body, key)
        if value is not None:
            setattr(row, key, value)
    row.settings = _settings(body, row.settings)
    scope.session.flush()
    return _channel_out(row)


@channels.delete("/{channel_id}", operation_id="delete_channel", response_model=Deleted)
def delete_channel(channel_id: str, scope: AdminScope) -> Deleted:
    scope.delete(scope.get(NotificationChannelRow, channel_id))
    return Deleted(id=channel_id)


@channels.post("/{channel_id}/test", operation_id="test_channel", response_model=ChannelTestOut)
def test_channel(channel_id: str, scope: AdminScope) -> ChannelTestOut:
    """Send a test message through the channel now; says whether it arrived at the server."""
    from axhub.serve.notify import deliver

    row = scope.get(NotificationChannelRow, channel_id)
    subject = "[AX Hub] 알림 시험" if row.lang == "ko" else "[AX Hub] test notification"
    text = "AX Hub 알림 채널이 동작합니다." if row.lang == "ko" else "This AX Hub notification channel works."
    try:
        deliver(row, subject, text, {"test": True, "subject": subject, "text": text})
    except Exception as exc:
        row.last_error = f"{type(exc).__name__}: {exc}"[:1000]
        return ChannelTestOut(ok=False, error=row.last_error)
    row.last_error = None
    return ChannelTestOut(ok=True)
