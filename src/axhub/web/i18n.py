"""Korean and English texts for the dashboard, and which one a request gets.

The choice is, in order: the ``axhub_lang`` cookie (set by the language switch and kept for a
year), then the browser's ``Accept-Language`` (Korean when it prefers Korean), else English.
Texts live in ``web/i18n/<locale>.json`` plus one ``web/i18n/<area>/<locale>.json`` per feature area
(so each area keeps its own texts); a key missing from one locale falls back to English so a
half-translated page still reads, and a test checks both locales have the same keys.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from starlette.requests import Request

LOCALES = ("ko", "en")
LANG_COOKIE = "axhub_lang"
I18N_DIR = Path(__file__).with_name("i18n")


def _load(locale: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((I18N_DIR / f"{locale}.json").read_text(encoding="utf-8"))
    for area_file in sorted(I18N_DIR.glob(f"*/{locale}.json")):
        data.update(json.loads(area_file.read_text(encoding="utf-8")))
    return data


@cache
def texts(locale: str) -> dict[str, str]:
    data = _load(locale)
    if locale != "en":
        return {**texts("en"), **data}
    return data


def prefers_korean(accept_language: str) -> bool:
    """Whether the highest-weighted language of an Accept-Language header is Korean."""
    best, best_q = "", -1.0
    for part in accept_language.split(","):
        lang, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if lang and q > best_q:
            best, best_q = lang.strip().lower(), q
    return best.startswith("ko")


def locale_of(request: Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LOCALES:
        return chosen
    return "ko" if prefers_korean(request.headers.get("accept-language", "")) else "en"


class Translator:
    """``t('key', n=3)`` in templates: the text for the request's locale, formatted."""

    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in LOCALES else "en"
        self.table = texts(self.locale)

    def __call__(self, key: str, **values: object) -> str:
        text = self.table.get(key, key)
        return text.format(**values) if values else text
