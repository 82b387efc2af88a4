"""Messages people read about their input, in Korean and English.

A problem found in a file carries a stable ``code`` and its ``params``; the words are chosen
when it is shown (the API from ``Accept-Language`` or ``?lang=``, the CLI from ``--lang`` or the
locale), so one engine serves a Korean page and an English terminal alike. A problem without a
code (older callers) is shown as its English text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

Lang = Literal["ko", "en"]
LANGS: tuple[Lang, ...] = ("ko", "en")

# code -> language -> (message, hint); {name} placeholders are filled from the problem's params.
CATALOG: dict[str, dict[Lang, tuple[str, str]]] = {
    # Bundles (``registry.bundle``): the file is the one inside the bundle, never a server path.
    "bundle_no_manifest": {
        "en": ("the bundle has no manifest.json", "re-export the model on the hub and send it again"),
        "ko": ("번들에 manifest.json이 없습니다", "허브에서 모델을 다시 내보내 보내세요"),
    },
    "bundle_manifest_unreadable": {
        "en": ("manifest.json is not valid JSON", "re-export the model on the hub and send it again"),
        "ko": ("manifest.json이 올바른 JSON이 아닙니다", "허브에서 모델을 다시 내보내 보내세요"),
    },
    "bundle_no_hashes": {
        "en": ("manifest.json lists no file hashes", "re-export the model on the hub and send it again"),
        "ko": ("manifest.json에 파일 해시 목록이 없습니다", "허브에서 모델을 다시 내보내 보내세요"),
    },
    "bundle_not_listed_required": {
        "en": (
            "{required} is not listed in the manifest",
            "re-export the model on the hub and send it again",
        ),
        "ko": ("{required}이(가) 매니페스트에 없습니다", "허브에서 모델을 다시 내보내 보내세요"),
    },
    "bundle_file_missing": {
        "en": (
            "file missing from the bundle (hash check)",
            "re-export the model on the hub and send it again",
        ),
        "ko": ("번들에 이 파일이 없습니다(해시 검사)", "허브에서 모델을 다시 내보내 보내세요"),
    },
    "bundle_file_changed": {
        "en": (
            "sha256 differs from the manifest (hash check): the file was changed after export",
            "do not use this copy; send the model again from the hub (axhub edge rollout)",
        ),
        "ko": (
            "sha256이 매니페스트와 다릅니다(해시 검사): 내보낸 뒤 파일이 바뀌었습니다",
            "이 사본은 쓰지 말고 허브에서 모델을 다시 보내세요(axhub edge rollout)",
        ),
    },
    "bundle_file_extra": {
        "en": (
            "not listed in the manifest (hash check): the file was added after export",
            "do not use this copy; send the model again from the hub (axhub edge rollout)",
        ),
        "ko": (
            "매니페스트에 없는 파일입니다(해시 검사): 내보낸 뒤 추가되었습니다",
            "이 사본은 쓰지 말고 허브에서 모델을 다시 보내세요(axhub edge rollout)",
        ),
    },
    "bundle_unsafe_name": {
        "en": (
            "unsafe file name in the bundle",
            "use plain relative names of letters, digits, '.', '_', '-'",
        ),
        "ko": ("번들의 파일 이름이 안전하지 않습니다", "영문자, 숫자, '.', '_', '-'로 된 상대 이름만 쓰세요"),
    },
    "bundle_hmac_mismatch": {
        "en": (
            "signature does not match the hub key (signature check)",
            "do not use this copy; export the model again from the hub",
        ),
        "ko": (
            "서명이 허브 키와 맞지 않습니다(서명 검사)",
            "이 사본은 쓰지 말고 허브에서 모델을 다시 내보내세요",
        ),
    },
    "bundle_unsigned": {
        "en": ("bundle is not signed (signature check)", "export the model from the hub, which signs it"),
        "ko": ("번들에 서명이 없습니다(서명 검사)", "서명하는 허브에서 모델을 내보내세요"),
    },
    "bundle_key_needed": {
        "en": ("a key is needed to check the signature", "give the hub key"),
        "ko": ("서명을 확인하려면 키가 필요합니다", "허브 키를 주세요"),
    },
    "bundle_not_hub_signed": {
        "en": (
            "bundle is not signed by the hub (signature check: no Ed25519 signature)",
            "send the model with 'axhub edge rollout', which signs it with the hub key",
        ),
        "ko": (
            "허브가 서명한 번들이 아닙니다(서명 검사: Ed25519 서명 없음)",
            "허브 키로 서명하는 'axhub edge rollout'으로 모델을 보내세요",
        ),
    },
    "bundle_bad_signature": {
        "en": (
            "Ed25519 signature does not match the hub's public key (signature check): the manifest "
            "was edited after signing, or another hub signed it",
            "do not use this copy; send the model again with 'axhub edge rollout' from this device's hub",
        ),
        "ko": (
            "Ed25519 서명이 허브 공개 키와 맞지 않습니다(서명 검사): 서명 뒤 매니페스트가 "
            "바뀌었거나 다른 허브가 서명했습니다",
            "이 사본은 쓰지 말고 이 장치의 허브에서 'axhub edge rollout'으로 다시 보내세요",
        ),
    },
    "bundle_download_altered": {
        "en": (
            "download incomplete or altered (archive sha256 {got}… is not the announced {expected}…)",
            "the agent downloads it again at the next sync; check the network if this repeats",
        ),
        "ko": (
            "내려받은 파일이 불완전하거나 바뀌었습니다(아카이브 sha256 {got}…, 허브가 알린 값 {expected}…)",
            "다음 동기화에서 다시 내려받습니다. 반복되면 네트워크를 확인하세요",
        ),
    },
    "bundle_too_large": {
        "en": ("unpacks to {size} bytes, more than {limit}", "this is not a model bundle"),
        "ko": ("풀면 {size}바이트로 한도 {limit}바이트를 넘습니다", "모델 번들이 아닙니다"),
    },
    "bundle_zip_bomb": {
        "en": ("unpacks {size} bytes from {packed} (a zip bomb, not a model)", "this is not a model bundle"),
        "ko": ("{packed}바이트에서 {size}바이트로 풀립니다(압축 폭탄, 모델이 아님)", "모델 번들이 아닙니다"),
    },
    "bundle_larger_than_declared": {
        "en": ("larger than the archive declares", "this is not a model bundle"),
        "ko": ("아카이브가 알린 크기보다 큽니다", "모델 번들이 아닙니다"),
    },
    "file_not_found": {
        "en": ("file not found", "check the path"),
        "ko": ("파일을 찾을 수 없습니다", "경로를 확인하세요"),
    },
    "file_empty": {
        "en": ("the file is empty (no header line)", "export the data again with a header row"),
        "ko": ("파일이 비어 있습니다(제목 행이 없음)", "제목 행을 포함해 다시 내보내세요"),
    },
    "encoding_unknown": {
        "en": (
            "the file is not UTF-8 or CP949/EUC-KR text",
            "choose the file's encoding (e.g. cp949, utf-8, latin-1)",
        ),
        "ko": (
            "파일이 UTF-8 또는 CP949/EUC-KR 텍스트가 아닙니다",
            "파일 인코딩을 직접 지정하세요(예: cp949, utf-8, latin-1)",
        ),
    },
    "encoding_invalid": {
        "en": (
            "the file cannot be read as {encoding} (byte {offset})",
            "choose another encoding, or leave it empty to detect it",
        ),
        "ko": (
            "파일을 {encoding}(으)로 읽을 수 없습니다(바이트 {offset})",
            "다른 인코딩을 고르거나 비워 두어 자동으로 찾게 하세요",
        ),
    },
    "encoding_name": {
        "en": ("unknown encoding {encoding!r}", "use e.g. utf-8, cp949, euc-kr"),
        "ko": ("알 수 없는 인코딩 {encoding!r}", "utf-8, cp949, euc-kr 등을 쓰세요"),
    },
    "file_unreadable": {
        "en": ("not a readable {kind} file: {reason}", "check the file opens in a spreadsheet"),
        "ko": ("{kind} 파일로 읽을 수 없습니다: {reason}", "스프레드시트에서 열리는지 확인하세요"),
    },
    "sheet_missing": {
        "en": ("the workbook has no sheet {sheet!r} (sheets: {sheets})", "choose one of the sheets"),
        "ko": ("통합 문서에 {sheet!r} 시트가 없습니다(시트: {sheets})", "있는 시트 중에서 고르세요"),
    },
    "column_missing": {
        "en": (
            "column {column!r} ({what}) is not in the file's header ({header})",
            "choose a column the file has",
        ),
        "ko": ("{column!r} 열({what})이 파일 제목 행({header})에 없습니다", "파일에 있는 열을 고르세요"),
    },
    "no_asset": {
        "en": ("no machine: the file has no machine column and none was chosen", "choose the machine"),
        "ko": ("설비가 없습니다: 파일에 설비 열이 없고 설비도 선택되지 않았습니다", "설비를 선택하세요"),
    },
    "no_signal_columns": {
        "en": (
            "no signal columns besides the time column",
            "a file needs a time column and one column per signal",
        ),
        "ko": ("시간 열 외에 신호 열이 없습니다", "시간 열 하나와 신호마다 열 하나가 필요합니다"),
    },
    "text_column": {
        "en": ("the column holds text, not numbers", "mark the column as ignored"),
        "ko": ("이 열에는 숫자가 아닌 글자가 들어 있습니다", "이 열을 '사용 안 함'으로 표시하세요"),
    },
    "no_time_values": {
        "en": (
            "no value of the time column could be read as a time (e.g. {example!r})",
            "choose the time format (e.g. %Y-%m-%d %H:%M:%S) or another time column",
        ),
        "ko": (
            "시간 열의 어떤 값도 시간으로 읽을 수 없습니다(예: {example!r})",
            "시간 형식(예: %Y-%m-%d %H:%M:%S)이나 다른 시간 열을 고르세요",
        ),
    },
    "bad_time": {
        "en": ("unreadable time {raw!r}", ""),
        "ko": ("시간으로 읽을 수 없는 값 {raw!r}", ""),
    },
    "missing_time": {"en": ("missing time", ""), "ko": ("시간이 비어 있습니다", "")},
    "not_a_number": {"en": ("not a number: {raw!r}", ""), "ko": ("숫자가 아닙니다: {raw!r}", "")},
    # The one rule for readings (core.reading_rules), as it applies to files.
    "value_not_finite": {
        "en": ("not a finite number: {raw!r} (NaN and infinity are refused)", ""),
        "ko": ("유한한 숫자가 아닙니다: {raw!r} (NaN과 무한대는 받지 않습니다)", ""),
    },
    "value_int_range": {
        "en": (
            "integer {raw} is outside the 64-bit signed range (-2^63..2^63-1): no column keeps it "
            "exactly, and a rounded value is not stored",
            "",
        ),
        "ko": (
            "정수 {raw}이(가) 64비트 부호 있는 정수 범위(-2^63..2^63-1)를 벗어납니다: 정확히 저장할 수 "
            "없으므로 반올림한 값을 저장하지 않습니다",
            "",
        ),
    },
    "time_range": {
        "en": ("time {raw!r} is outside 2000-01-01..2100-01-01 UTC", "check the time column and its unit"),
        "ko": ("시각 {raw!r}이(가) 2000-01-01..2100-01-01(UTC) 범위 밖입니다", "시간 열과 단위를 확인하세요"),
    },
    "signal_name_bad": {
        "en": ("{reason_en}", "give the column another signal name in the mapping, or ignore it"),
        "ko": ("{reason_ko}", "매핑에서 이 열에 다른 신호 이름을 주거나 '사용 안 함'으로 표시하세요"),
    },
    "field_count": {
        "en": ("the row has {actual} fields, the header has {expected}", ""),
        "ko": ("이 행에는 값이 {actual}개, 제목 행에는 {expected}개 있습니다", ""),
    },
    "missing_signal_name": {"en": ("missing signal name", ""), "ko": ("신호 이름이 비어 있습니다", "")},
    "missing_asset": {"en": ("missing machine", ""), "ko": ("설비가 비어 있습니다", "")},
    "asset_name_bad": {
        "en": ("machine id may only hold letters, digits, '_', '.' and '-': {raw!r}", ""),
        "ko": ("설비 ID에는 글자, 숫자, '_', '.', '-'만 쓸 수 있습니다: {raw!r}", ""),
    },
    "quality_bad": {
        "en": ("quality must be 0-255 or good/uncertain/bad: {raw!r}", ""),
        "ko": ("품질 값은 0-255 또는 good/uncertain/bad여야 합니다: {raw!r}", ""),
    },
    "file_kind": {
        "en": ("cannot tell what kind of file this is", "upload .csv, .xlsx, .parquet or an image"),
        "ko": ("어떤 종류의 파일인지 알 수 없습니다", ".csv, .xlsx, .parquet 또는 이미지를 올리세요"),
    },
    "setting_invalid": {
        "en": ("setting {setting!r}: {reason}", "fix the setting and preview again"),
        "ko": ("설정 {setting!r}: {reason}", "설정을 고친 뒤 다시 미리 보세요"),
    },
    # Images (``ml.vision``): the file is the user's own name for it.
    "image_unreadable": {
        "en": (
            "not a readable image ({reason})",
            "re-export the file as PNG or JPEG, or remove it from the folder",
        ),
        "ko": (
            "읽을 수 있는 이미지가 아닙니다({reason})",
            "PNG나 JPEG로 다시 저장하거나 폴더에서 빼세요",
        ),
    },
    "vision_needs_labels": {
        "en": (
            "a supervised model needs labelled images",
            "put each class in its own sub-folder (good parts and each defect), or train PatchCore "
            "on good parts only",
        ),
        "ko": (
            "지도 학습 모델에는 레이블 이미지가 필요합니다",
            "부류마다(양품과 불량 종류마다) 하위 폴더에 넣거나, 양품만으로 PatchCore를 학습하세요",
        ),
    },
    "vision_one_class": {
        "en": (
            "a supervised model needs at least two classes, found only {classes}",
            "add a sub-folder of defect images, or train PatchCore on good parts only",
        ),
        "ko": (
            "지도 학습 모델에는 부류가 둘 이상 필요한데 {classes}뿐입니다",
            "불량 이미지 하위 폴더를 더하거나, 양품만으로 PatchCore를 학습하세요",
        ),
    },
    "vision_no_good_images": {
        "en": (
            "no good images (every image is labelled as a defect)",
            "put good parts in a folder named 'good', 'ok' or '양품', or at the folder's root",
        ),
        "ko": (
            "양품 이미지가 없습니다(모든 이미지가 불량으로 레이블되어 있음)",
            "양품을 'good', 'ok', '양품' 폴더나 최상위 폴더에 넣으세요",
        ),
    },
}

# How a problem's place is written; and the prefix of a whole-file refusal.
_WHERE: dict[Lang, dict[str, str]] = {
    "en": {"row": "row {row}", "field": "column {field!r}"},
    "ko": {"row": "{row}행", "field": "{field!r} 열"},
}
BUNDLE_REFUSED: dict[Lang, str] = {
    "en": "bundle {label} refused, nothing was loaded",
    "ko": "번들 {label}을(를) 거부했습니다(아무것도 불러오지 않음)",
}
REFUSED: dict[Lang, str] = {
    "en": "The whole file was refused; nothing was stored",
    "ko": "파일 전체를 받을 수 없어 아무것도 저장하지 않았습니다",
}
_WHAT: dict[Lang, dict[str, str]] = {
    "en": {"time": "time", "signal name": "signal name", "value": "value", "machine": "machine"},
    "ko": {
        "time": "시간",
        "signal name": "신호 이름",
        "value": "값",
        "machine": "설비",
        "mapped signal": "신호",
    },
}


def normalize_lang(value: str | None, default: Lang = "en") -> Lang:
    """'ko', 'ko-KR', 'ko_KR.UTF-8', 'en-US' -> 'ko' | 'en'; anything else -> ``default``."""
    if not value:
        return default
    head = value.strip().lower().replace("_", "-").split("-", 1)[0].split(".", 1)[0]
    return "ko" if head == "ko" else "en" if head == "en" else default


def lang_from_accept(header: str | None, default: Lang = "en") -> Lang:
    """The best of our languages in an ``Accept-Language`` header (q-values respected)."""
    if not header:
        return default
    best: tuple[float, Lang] | None = None
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        head = name.strip().lower().replace("_", "-").split("-", 1)[0]
        if head in LANGS and (best is None or q > best[0]):
            best = (q, normalize_lang(head))
    return best[1] if best else default


def lang_from_locale() -> Lang:
    """The CLI's default: LC_ALL, LC_MESSAGES, LANG (a Korean locale -> Korean)."""
    for var in ("AXHUB_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value and value not in {"C", "POSIX"}:
            return normalize_lang(value)
    return "en"


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:  # a template never fails on a missing parameter
        return "?"


def message(code: str, params: Mapping[str, Any] | None, lang: Lang) -> tuple[str, str]:
    """(message, hint) of ``code`` in ``lang``; ('', '') for an unknown code."""
    entry = CATALOG.get(code)
    if entry is None:
        return "", ""
    values = _Params(params or {})
    if "what" in values:
        values["what"] = _WHAT[lang].get(str(values["what"]), str(values["what"]))
    msg, hint = entry[lang]
    return msg.format_map(values), hint.format_map(values)


def where(file: str, row: int | None, field: str | None, lang: Lang) -> str:
    parts = [file]
    if row is not None:
        parts.append(_WHERE[lang]["row"].format(row=row))
    if field is not None:
        parts.append(_WHERE[lang]["field"].format(field=field))
    return ", ".join(parts)
