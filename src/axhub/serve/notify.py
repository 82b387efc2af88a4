"""Telling people about new alerts: webhooks (JSON POST) and e-mail (SMTP), per channel.

A channel has a minimum severity and a language; the message names the machine, the time in
the site's zone and each signal as reading vs normal range. Sending never breaks scoring:
a failure is recorded on the channel (``last_error``) and logged. Timeouts are short.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from axhub.core import secret_box
from axhub.serve.explain import describe
from axhub.store.db import Database
from axhub.store.models import AlertRow, AssetRow, NotificationChannelRow
from axhub.store.platform import list_orgs
from axhub.store.scoped import OrgScope

log = logging.getLogger(__name__)
SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}
_SEVERITY_KO = {"info": "정보", "warning": "경고", "critical": "심각"}
TIMEOUT_S = 5.0


def alert_message(alert: AlertRow, asset_name: str, zone: str, lang: str) -> tuple[str, str, dict[str, Any]]:
    """(subject, text body, JSON payload) of an alert in ``lang``."""
    when = alert.ts.astimezone(ZoneInfo(zone))
    signals = [f"{e.get('signal')}: {describe(e, lang)}" for e in alert.explanation or [] if "value" in e]
    rule = alert.kind == "rule"
    if lang == "ko":
        what = "규칙 위반" if rule else "이상 징후"
        subject = f"[AX Hub] {asset_name} {what} ({_SEVERITY_KO.get(alert.severity, alert.severity)})"
        lines = [f"설비: {asset_name}", f"시각: {when:%Y-%m-%d %H:%M:%S} ({zone})", "원인 신호:", *signals]
    else:
        what = "Rule broken" if rule else "Unusual behaviour"
        subject = f"[AX Hub] {what} on {asset_name} ({alert.severity})"
        lines = [f"Machine: {asset_name}", f"Time: {when:%Y-%m-%d %H:%M:%S} ({zone})", "Signals:", *signals]
    payload = {
        "id": alert.id,
        "asset_id": alert.asset_id,
        "asset": asset_name,
        "ts": alert.ts.isoformat(),
        "severity": alert.severity,
        "kind": alert.kind,
        "source": alert.source,
        "score": alert.score,
        "threshold": alert.threshold,
        "explanation": alert.explanation,
        "subject": subject,
        "text": "\n".join(lines),
    }
    return subject, "\n".join(lines), payload


def send_webhook(url: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    if not url.startswith(("http://", "https://")):
        raise ValueError("a webhook URL must start with http:// or https://")
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        response.read()


def send_email(settings: dict[str, Any], to: list[str], subject: str, text: str) -> None:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = str(settings.get("sender") or "axhub@localhost")
    message["To"] = ", ".join(to)
    message.set_content(text)
    host, port = str(settings.get("host") or "localhost"), int(settings.get("port") or 25)
    with smtplib.SMTP(host, port, timeout=TIMEOUT_S) as smtp:
        if settings.get("starttls"):
            smtp.starttls()
        if settings.get("username"):
            smtp.login(str(settings["username"]), str(settings.get("password") or ""))
        smtp.send_message(message)


def smtp_settings(channel: NotificationChannelRow) -> dict[str, Any]:
    """The channel's SMTP settings with its password opened (it is stored sealed)."""
    settings = dict(channel.settings)
    sealed = settings.pop("password_sealed", None)
    if sealed:
        settings["password"] = secret_box.current().open(str(sealed))
    return settings


def seal_stored_passwords(db: Database) -> int:
    """Seal SMTP passwords that older versions stored in the clear; returns how many."""
    sealed = 0
    box = secret_box.current()
    with db.session() as session:
        for org in list_orgs(session):
            for channel in OrgScope(session, org.id).list(NotificationChannelRow):
                plain = (channel.settings or {}).get("password")
                if plain:
                    settings = {k: v for k, v in channel.settings.items() if k != "password"}
                    settings["password_sealed"] = box.seal(str(plain))
                    channel.settings = settings
                    sealed += 1
    return sealed


def deliver(channel: NotificationChannelRow, subject: str, text: str, payload: dict[str, Any]) -> None:
    if channel.kind == "webhook":
        send_webhook(channel.target, payload, dict(channel.settings.get("headers") or {}))
    elif channel.kind == "email":
        to = [a.strip() for a in channel.target.split(",") if a.strip()]
        send_email(smtp_settings(channel), to, subject, text)
    else:
        raise ValueError(f"unknown channel kind {channel.kind!r}")


def notify_alert(db: Database, org_id: str, alert_id: str) -> int:
    """Send a new alert to every enabled channel of its organisation that wants its severity;
    returns how many deliveries succeeded."""
    sent = 0
    with db.session() as session:
        scope = OrgScope(session, org_id)
        channels = scope.list(NotificationChannelRow, enabled=True)
        if not channels:
            return 0
        alert = scope.get(AlertRow, alert_id)
        asset = scope.find(AssetRow, id=alert.asset_id)
        name = asset.name if asset else alert.asset_id
        zone = scope.timezone_for_asset(asset) if asset else scope.org_timezone()
        for channel in channels:
            if SEVERITY_ORDER.get(alert.severity, 1) < SEVERITY_ORDER.get(channel.min_severity, 1):
                continue
            subject, text, payload = alert_message(alert, name, zone, channel.lang)
            try:
                deliver(channel, subject, text, payload)
                channel.last_error = None
                sent += 1
            except Exception as exc:  # a dead webhook or mail server must not stop scoring
                channel.last_error = f"{type(exc).__name__}: {exc}"[:1000]
                log.warning("notification channel %s failed: %s", channel.id, exc)
    return sent
