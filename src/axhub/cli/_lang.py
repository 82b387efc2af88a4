"""The CLI speaks one language: ``--lang ko|en`` (on the command or before it), else the
``AXHUB_LANG``/``LC_ALL``/``LANG`` locale. Texts live here, keyed, in both languages."""

from __future__ import annotations

from typing import Any

import typer

from axhub.core.messages import Lang, lang_from_locale, normalize_lang

_current: list[Lang] = []

TEXTS: dict[str, tuple[str, str]] = {
    # key: (English, Korean)
    "error": ("error", "오류"),
    "ingest.title": ("Ingest summary — {file}", "적재 결과 — {file}"),
    "ingest.settings": ("read as", "읽은 방식"),
    "ingest.rows_read": ("rows read", "읽은 행"),
    "ingest.points": ("points written", "저장된 값"),
    "ingest.duplicates": ("already stored (skipped)", "이미 저장됨(건너뜀)"),
    "ingest.rows_rejected": ("rows rejected", "거부된 행"),
    "ingest.values_rejected": ("values rejected", "거부된 값"),
    "ingest.empty": ("empty cells", "빈 셀"),
    "ingest.signals": ("signals", "신호"),
    "ingest.signals_new": ("{n} ({new} new)", "{n}개 (새 신호 {new}개)"),
    "ingest.period": ("period (site time)", "기간(현장 시각)"),
    "ingest.time": ("time", "소요 시간"),
    "ingest.mapping": ("mapping", "매핑"),
    "ingest.mapping.given": ("given", "지정함"),
    "ingest.mapping.saved": ("the machine's saved mapping", "설비에 저장된 매핑"),
    "ingest.mapping.detected": ("detected", "자동 감지"),
    "ingest.alerts": ("alerts raised by deployed models", "배포된 모델이 올린 알람"),
    "ingest.rejects_file": ("rejected rows written to", "거부된 행 저장 위치"),
    "ingest.nothing": (
        "nothing was stored: every row was rejected",
        "아무것도 저장하지 않았습니다: 모든 행이 거부되었습니다",
    ),
    "vision.self_check_weak": (
        "The self-check is weak ({auroc:.1%} ± {std:.1%} on defects pasted into held-out good images; "
        "below 80 %): expect missed defects. Label a few real defects and train again for policy (b), "
        "or run 'axhub vision evaluate' on labelled images before relying on the model.",
        "자체 점검이 약합니다(따로 둔 양품 이미지에 붙인 불량에서 {auroc:.1%} ± {std:.1%}, 80 % 미만): "
        "놓치는 불량이 있을 수 있습니다. 실제 불량 몇 장에 레이블을 달아 정책 (b)로 다시 학습하거나, "
        "믿고 쓰기 전에 레이블이 있는 이미지로 'axhub vision evaluate'를 실행하세요.",
    ),
    "vision.self_check_weak_calibrated": (
        "The self-check is weak ({auroc:.1%} ± {std:.1%} on defects pasted into held-out good images; "
        "below 80 %): the labelled defects set the threshold, but defects unlike them may be missed. "
        "Run 'axhub vision evaluate' on labelled images the training did not see "
        "before relying on the model.",
        "자체 점검이 약합니다(따로 둔 양품 이미지에 붙인 불량에서 {auroc:.1%} ± {std:.1%}, 80 % 미만): "
        "레이블이 있는 불량으로 임계값을 정했지만 그와 다른 불량은 놓칠 수 있습니다. "
        "믿고 쓰기 전에 학습에 쓰지 않은 레이블 이미지로 'axhub vision evaluate'를 실행하세요.",
    ),
    "vision.evaluate_left_out_calibration": (
        "{n} images left out: they calibrated the threshold",
        "이미지 {n}장은 임계값을 정하는 데 쓰였으므로 평가에서 뺐습니다",
    ),
    "vision.evaluate_left_out_training": (
        "{n} images left out: they trained the model (its memory bank)",
        "이미지 {n}장은 모델 학습(메모리 뱅크)에 쓰였으므로 평가에서 뺐습니다",
    ),
    "vision.evaluate_all_seen": (
        "every labelled image under {folder} trained or calibrated this model: "
        "evaluate on labelled images it has not seen",
        "{folder} 아래의 레이블 이미지는 모두 이 모델의 학습이나 임계값 보정에 쓰였습니다: "
        "모델이 보지 않은 레이블 이미지로 평가하세요",
    ),
    "opcua_cert.made": (
        "OPC UA client certificate written (ApplicationUri {uri}):",
        "OPC UA 클라이언트 인증서를 만들었습니다(ApplicationUri {uri}):",
    ),
    "opcua_cert.kept": (
        "An OPC UA client certificate is already there and was kept (ApplicationUri {uri}; "
        "--replace makes a new one, which the server must then trust again):",
        "OPC UA 클라이언트 인증서가 이미 있어 그대로 두었습니다(ApplicationUri {uri}; "
        "--replace로 새로 만들면 서버에서 다시 신뢰해야 합니다):",
    ),
    "opcua_cert.certificate": ("certificate (give it to the server)", "인증서(서버에 줄 파일)"),
    "opcua_cert.key": ("private key (stays on this machine)", "개인 키(이 컴퓨터에만 둠)"),
    "opcua_cert.mapping": (
        "Put these lines under 'opcua:' in the mapping file:",
        "매핑 파일의 'opcua:' 아래에 다음 줄을 넣으세요:",
    ),
    "opcua_cert.trust": (
        "Then trust the certificate on the server: copy it into the server's trusted client "
        "certificates (node-opcua: pki/trusted/certs; Kepware: OPC UA Configuration > Trusted Clients "
        "> Import; many servers put a refused certificate in a 'rejected' folder, to be moved to "
        "'trusted'). 'axhub connect opcua -c <mapping>' then shows the values.",
        "그다음 서버에서 이 인증서를 신뢰하세요: 서버의 신뢰하는 클라이언트 인증서에 복사합니다"
        "(node-opcua: pki/trusted/certs; Kepware: OPC UA Configuration > Trusted Clients > Import; "
        "많은 서버가 거부한 인증서를 'rejected' 폴더에 두므로 'trusted'로 옮기면 됩니다). "
        "그 뒤 'axhub connect opcua -c <매핑 파일>'로 값을 확인하세요.",
    ),
    "col.id": ("id", "ID"),
    "col.time": ("time ({zone})", "시각({zone})"),
    "col.asset": ("machine", "설비"),
    "col.severity": ("severity", "심각도"),
    "col.why": ("why", "원인"),
    "col.count": ("count", "횟수"),
    "col.ack": ("acknowledged", "확인"),
    "col.state": ("state", "상태"),
    "severity.info": ("info", "정보"),
    "severity.warning": ("warning", "경고"),
    "severity.critical": ("critical", "심각"),
    "alerts.title": ("Alerts", "알람"),
    "alerts.acked": ("acknowledged {id} by {by}", "{id} 알람을 {by} 님이 확인했습니다"),
    "alerts.resolved": ("resolved {id} by {by}", "{id} 알람을 {by} 님이 해결했습니다"),
    "alerts.note": ("note added", "메모를 남겼습니다"),
    "alerts.model_title": ("Unusual behaviour on {asset}", "{asset} 이상 징후"),
    "alerts.rule_title": ("Rule {rule} on {asset}", "{asset} 규칙 {rule}"),
    "query.none": (
        "no readings for '{asset}' in this window (stored signals: {known})",
        "이 기간에 '{asset}' 데이터가 없습니다(저장된 신호: {known})",
    ),
    "query.more": ("... {n} more rows (use --csv to save all)", "... {n}행 더 있음(--csv로 모두 저장)"),
    "query.written": ("{n} rows written to {path}", "{n}행을 {path}에 저장했습니다"),
    "fed.member": ("member", "참여 기업"),
    "fed.status": ("status", "상태"),
    "fed.min_samples": ("min samples", "최소 표본"),
    "fed.eps_budget": ("DP ε budget", "차등 프라이버시 ε 한도"),
    "fed.eps_spent": ("ε spent", "사용한 ε"),
    "fed.secure_agg": ("secure agg.", "보안 집계"),
    "fed.metrics_out": ("metrics out", "밖으로 나가는 지표"),
    "fed.status.active": ("active", "참여 중"),
    "fed.status.invited": ("invited", "초대됨"),
    "fed.status.left": ("left", "탈퇴"),
    "fed.yes": ("yes", "예"),
    "fed.no": ("no", "아니요"),
    "fed.round": (
        "round {round}: {seconds:.1f} s, contribution {contribution}",
        "{round}회차: {seconds:.1f}초, 기여도 {contribution}",
    ),
    # axhub edge
    "edge.token": (
        "Enrolment token for {name} (group {group}), valid until {until}:",
        "{name} 등록 토큰 (그룹 {group}), {until}까지 유효:",
    ),
    "edge.token.once": (
        "It is shown only now and works once.",
        "지금 한 번만 표시되며 한 번만 쓸 수 있습니다.",
    ),
    "edge.enrolled": (
        "Enrolled as {id}; hub key fingerprint {fp}.",
        "{id}(으)로 등록했습니다. 허브 키 지문 {fp}.",
    ),
    "edge.fleet": ("Edge devices", "엣지 장치"),
    "edge.col.name": ("device", "장치"),
    "edge.col.group": ("group", "그룹"),
    "edge.col.online": ("online", "연결"),
    "edge.col.sync": ("last sync", "마지막 동기화"),
    "edge.col.depth": ("buffered", "버퍼"),
    "edge.col.bundle": ("bundle", "모델 번들"),
    "edge.col.agent": ("agent", "에이전트"),
    "edge.col.cpu": ("CPU %", "CPU %"),
    "edge.col.rss": ("memory MB", "메모리 MB"),
    "edge.yes": ("yes", "예"),
    "edge.no": ("no", "아니오"),
    "edge.revoked": ("revoked", "해지됨"),
    "edge.rollout": (
        "Rollout {id}: signed bundle {sha} to group {group}, canary {canary}.",
        "배포 {id}: 서명된 번들 {sha}을(를) 그룹 {group}에 보냄, 먼저 {canary}.",
    ),
    "edge.revoke.done": ("Device {id} revoked.", "장치 {id}을(를) 해지했습니다."),
}


def set_lang(lang: str | None) -> None:
    _current[:] = [normalize_lang(lang)] if lang else []


def current_lang() -> Lang:
    return _current[0] if _current else lang_from_locale()


def t(key: str, **params: Any) -> str:
    en, ko = TEXTS[key]
    return (ko if current_lang() == "ko" else en).format(**params)


def _lang_callback(value: str | None) -> str | None:
    if value:
        set_lang(value)
    return value


def lang_option() -> Any:
    return typer.Option(
        None,
        "--lang",
        help="Language of the output and of --help: ko or en (default: from the locale). / 출력 언어.",
        callback=_lang_callback,
        is_eager=True,
    )
