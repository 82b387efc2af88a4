"""Both dashboard locales carry the same texts: a Korean page never falls back to English."""

from __future__ import annotations

from axhub.web import i18n


def test_korean_and_english_have_the_same_keys() -> None:
    ko, en = i18n._load("ko"), i18n._load("en")
    assert sorted(set(en) - set(ko)) == [], "keys with no Korean text"
    assert sorted(set(ko) - set(en)) == [], "keys with no English text"


def test_korean_texts_are_not_english_copies() -> None:
    ko, en = i18n._load("ko"), i18n._load("en")
    # A Korean text identical to the English one (with Latin letters in it) is an untranslated copy.
    copies = [k for k, v in ko.items() if v == en.get(k) and any(c.isalpha() and c.isascii() for c in v)]
    assert copies == [], copies
