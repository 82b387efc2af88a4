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
    # vision train / evaluate / score / operating-point / export / import
    "vision.step.reading images": ("reading images", "이미지 읽기"),
    "vision.step.choosing layers": ("choosing layers", "특징 단계 고르기"),
    "vision.step.features": ("features", "특징 계산"),
    "vision.step.coreset": ("coreset", "코어셋"),
    "vision.step.scoring": ("scoring", "점수 계산"),
    "vision.step.fine-tuning": ("fine-tuning", "미세 조정"),
    "vision.not_a_folder": ("{folder} is not a folder", "{folder}은(는) 폴더가 아닙니다"),
    "vision.no_images": ("no image files under {folder}", "{folder} 아래에 이미지 파일이 없습니다"),
    "vision.folder_or_dataset": (
        "give exactly one of --folder or --dataset",
        "--folder와 --dataset 가운데 하나만 지정하세요",
    ),
    "vision.unknown_backbone": (
        "unknown backbone {backbone!r}; choose from {choices}",
        "알 수 없는 백본 {backbone!r}입니다. 다음 가운데 고르세요: {choices}",
    ),
    "vision.unknown_model": (
        "unknown model {model!r}; choose from {models}",
        "알 수 없는 모델 {model!r}입니다. 다음 가운데 고르세요: {models}",
    ),
    "vision.supervised_model": ("supervised model: {name}", "지도 학습 모델: {name}"),
    "vision.features": (
        "backbone {backbone} stages {stages}, input {h}x{w} ({method})",
        "백본 {backbone}, 특징 단계 {stages}, 입력 {h}x{w} ({method})",
    ),
    "vision.features.self_check": (
        "self-check on good images only: {bank} bank images, {clean} held-out good images vs the same "
        "with one synthetic defect of each kind ({kinds})",
        "양품 이미지만으로 한 자체 점검: 뱅크 {bank}장, 따로 둔 양품 {clean}장과 그 이미지에 종류마다 "
        "합성 불량을 하나씩 넣은 것 ({kinds})",
    ),
    "vision.features.given": ("as given", "지정한 대로"),
    "vision.features.default": (
        "default: no held-out images to check on",
        "기본값: 점검에 쓸 따로 둔 이미지가 없음",
    ),
    "vision.candidate": (
        "{backbone} {stages} margin {margin}: synthetic AUROC {auroc:.1f}{spread} % ({kinds}), "
        "recall at max good {recall:.0f} %",
        "{backbone} {stages} 가장자리 제외 {margin}: 합성 불량 AUROC {auroc:.1f}{spread} % ({kinds}), "
        "양품 최고 점수 위 재현율 {recall:.0f} %",
    ),
    "vision.kind.patch": ("patch", "붙인 조각"),
    "vision.kind.scratch": ("scratch", "긁힘"),
    "vision.kind.spot": ("spot", "반점"),
    "vision.threshold_b": (
        "threshold {threshold:.4f}: policy (b), {n} labelled defects, miss rate {miss:.0%} on them "
        "(target {target:.0%}); leave these images out of any evaluation (evaluate does so by itself)",
        "임계값 {threshold:.4f}: 정책 (b), 레이블 불량 {n}장, 그 가운데 놓친 비율 "
        "{miss:.0%}(목표 {target:.0%}). 이 이미지들은 어떤 평가에서도 빼세요(evaluate는 스스로 뺍니다)",
    ),
    "vision.threshold_a": (
        "threshold {threshold:.4f}: policy (a), {n} held-out good images; false alarms at most "
        "{bound:.1%} with {confidence:.0%} confidence (target {target:.1%}{needs})",
        "임계값 {threshold:.4f}: 정책 (a), 따로 둔 양품 {n}장. 오경보는 신뢰도 {confidence:.0%}로 "
        "최대 {bound:.1%}(목표 {target:.1%}{needs})",
    ),
    "vision.threshold_needs": (
        "; needs {n} held-out good images",
        ". 목표를 보장하려면 따로 둔 양품 {n}장이 필요함",
    ),
    "vision.classes": ("classes {classes}; calibration {calibration}", "부류 {classes}, 보정 {calibration}"),
    "vision.bundle_written": ("bundle written: {out}", "모델 번들 저장: {out}"),
    "vision.registered": ("registered: {model}", "등록: {model}"),
    "vision.no_labelled": ("no labelled images under {folder}", "{folder} 아래에 레이블 이미지가 없습니다"),
    "vision.metric.auroc": ("auroc", "AUROC"),
    "vision.metric.f1": ("f1", "F1"),
    "vision.metric.precision": ("precision", "정밀도"),
    "vision.metric.recall": ("recall", "재현율"),
    "vision.metric.accuracy": ("accuracy", "정확도"),
    "vision.metric.pixel_auroc": ("pixel_auroc", "화소 AUROC"),
    "vision.evaluate_written": (
        "written: {out}/metrics.json, roc.png, scores.png, heatmaps/",
        "저장: {out}/metrics.json, roc.png, scores.png, heatmaps/",
    ),
    "vision.score_skipped": ("{path}: skipped - {error}", "{path}: 건너뜀 - {error}"),
    "vision.verdict_defect": ("DEFECT", "불량"),
    "vision.verdict_good": ("OK", "양품"),
    "vision.one_policy": (
        "give exactly one of --threshold, --target-false-alarm, --target-miss",
        "--threshold, --target-false-alarm, --target-miss 가운데 하나만 지정하세요",
    ),
    "vision.no_calibration": (
        "{name} keeps no calibration scores (not an anomaly model)",
        "{name}에는 보정 점수가 없습니다(이상 탐지 모델이 아님)",
    ),
    "vision.operating_point": (
        "threshold {threshold:.4f}: false alarms {far:.1%} of calibration good images{miss}",
        "임계값 {threshold:.4f}: 보정용 양품의 오경보 {far:.1%}{miss}",
    ),
    "vision.operating_point_miss": (
        ", misses {miss:.1%} of calibration defects",
        ", 보정용 불량을 놓친 비율 {miss:.1%}",
    ),
    "vision.int8_decision": ("INT8 decision: {decision}", "INT8 판단: {decision}"),
    "vision.int8_refused": (
        "INT8 not shipped: accuracy did not hold; keep the float32 bundle.",
        "INT8 번들은 만들지 않았습니다: 정확도가 유지되지 않았으니 float32 번들을 쓰세요.",
    ),
    "vision.int8_written": ("INT8 bundle written: {out}", "INT8 번들 저장: {out}"),
    "vision.imported": (
        "{n} images imported into {dataset} {version}",
        "이미지 {n}장을 {dataset} {version}(으)로 가져왔습니다",
    ),
    "vision.import_skipped": ("skipped: {problem}", "건너뜀: {problem}"),
    "vision.mask_left_out": ("mask left out: {problem}", "마스크 뺌: {problem}"),
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
