"""The edge agent process: read the machine, buffer durably, score, alert, forward, update.

Two threads besides the main one:

- **ingest**: the configured connectors (OPC UA, Modbus TCP, MQTT) → ``Buffer.add_readings``
  (committed) → the delivery's ack → the local scorer → alerts (buffer + log + webhook). None of
  it needs the hub.
- **sync**: heartbeats (status up, config and bundle target down), then buffered batches to the
  hub until the buffer is empty; a hub that does not answer is simply retried later, a revoked
  device keeps buffering and stops calling the hub. Bundle updates are verified, swapped in,
  health-checked on the next live rows and rolled back on failure (``bundles.py``); a vision
  bundle is checked on the watched folder's newest images before it is swapped in.

Run with ``python -m axhub.edge.agent --home DIR`` or ``axhub edge run --home DIR``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import axhub
from axhub.core.malloc_arenas import limit_malloc_arenas
from axhub.edge.alerts import LocalAlerts
from axhub.edge.buffer import ALERTS_KIND, Buffer
from axhub.edge.bundles import BundleSlots
from axhub.edge.config import (
    STATUS_FILE,
    AgentConfig,
    Identity,
    load_config,
    load_identity,
    save_config,
    save_identity,
    write_json_atomic,
)
from axhub.edge.hubclient import BatchRefused, DeviceRevoked, HubClient, HubUnreachable, enrol
from axhub.edge.scoring import LocalScorer, health_problem
from axhub.edge.vision import FolderInspector, is_vision_bundle, sample_images, vision_health_problem
from axhub.registry.bundle import BundleError

log = logging.getLogger("axhub.edge")


def enrol_device(home: Path, hub_url: str, token: str, name: str) -> Identity:
    """Exchange a one-time token for this device's credential; pins the hub's public key."""
    answer = enrol(hub_url, token, name, axhub.__version__)
    identity = Identity(
        device_id=str(answer["device_id"]),
        org=str(answer.get("org", "")),
        name=name,
        hub_url=hub_url,
        credential=str(answer["credential"]),
        hub_public_key=str(answer["hub_public_key"]),
    )
    save_identity(home, identity)
    if answer.get("config"):
        save_config(home, AgentConfig.model_validate(answer["config"]))
    return identity


class _Usage:
    """CPU share of one core and resident memory of this process, between two calls."""

    def __init__(self) -> None:
        self._t = time.monotonic()
        self._cpu = self._cpu_s()

    @staticmethod
    def _cpu_s() -> float:
        t = os.times()
        return t.user + t.system

    def sample(self) -> dict[str, float]:
        now, cpu = time.monotonic(), self._cpu_s()
        share = (cpu - self._cpu) / max(now - self._t, 1e-6) * 100
        self._t, self._cpu = now, cpu
        return {"cpu_percent": round(share, 2), "rss_mb": round(rss_mb(), 1)}


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Agent:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.identity = load_identity(home)
        self.config = load_config(home)
        self.buffer = Buffer(home / "buffer.db", quota_bytes=int(self.config.quota_mb * 2**20))
        self.alerts = LocalAlerts(home / "alerts.log", self.config.webhook_url)
        self.slots = BundleSlots(home, self.identity.hub_public_key.encode())
        self.client = HubClient(self.identity.hub_url, self.identity.credential)
        self.stop = threading.Event()
        self.revoked = False
        self.last_sync_at: float | None = None
        self.last_error: str | None = None
        self.rejected_payloads = 0
        self.sources_health: list[dict[str, Any]] = []
        self.bundle_reports: list[dict[str, Any]] = []
        self.failed_bundles: set[str] = set()
        self._config_changed = threading.Event()
        self._lock = threading.Lock()
        self._scorer_error: str | None = None
        self._candidate: dict[str, Any] | None = None
        self._usage = _Usage()
        self.inspector: FolderInspector | None = None
        self._inspection_error: str | None = None
        self._waiting_for_sample: str | None = None
        recovered = self.slots.recover()
        if recovered:
            log.error("bundle %s rolled back: %s", str(recovered.get("candidate"))[:12], recovered["reason"])
            self.failed_bundles.add(str(recovered.get("candidate")))
            self.bundle_reports.append(
                {
                    "sha256": recovered.get("candidate"),
                    "rollout_id": recovered.get("rollout_id"),
                    "outcome": "rolled_back",
                    "reason": recovered["reason"],
                }
            )
        self.scorer = self._make_scorer(self.slots.current_sha)

    # ------------------------------------------------------------------ scoring
    def _make_scorer(self, sha: str | None) -> LocalScorer | None:
        if sha is None or not self.config.score_assets:
            return None
        runner = self.slots.runner(sha)
        assert runner is not None
        if is_vision_bundle(runner):
            return None  # images, not readings: the watched folder's inspector runs it
        return LocalScorer(
            runner,
            self.config.score_assets,
            bundle_sha=sha,
            bucket_s=self.config.bucket_s,
            on_alert=self._on_alert,
        )

    def _on_alert(self, alert: dict[str, Any]) -> None:
        self.buffer.add_event(ALERTS_KIND, alert)  # durable first: the hub gets it exactly once
        self.alerts.raise_alert(alert)

    def handle_batch(self, batch: Any) -> None:
        """Buffer (durably), then score; the caller acknowledges upstream after this returns."""
        self.buffer.add_readings(batch)
        with self._lock:
            scorer = self.scorer
        if scorer is None:
            return
        try:
            scorer.feed(batch)
        except Exception as exc:  # a bundle failing on live data must not stop buffering
            self._scorer_error = f"{type(exc).__name__}: {exc}"
            log.error("scoring failed: %s", self._scorer_error)

    # ------------------------------------------------------------------ ingest thread
    def _ingest_loop(self) -> None:
        from axhub.ingest.connectors.factory import build_source, configured_protocols, quiet_protocol_loggers
        from axhub.ingest.tag_mapping import parse_mapping

        quiet_protocol_loggers()
        while not self.stop.is_set():
            self._config_changed.clear()
            if not self.config.connectors:
                self._config_changed.wait(1.0)
                continue
            try:
                mapping = parse_mapping(self.config.connectors, file="config.json")
            except Exception as exc:
                self.last_error = f"connector configuration refused: {exc}"
                log.error(self.last_error)
                self._config_changed.wait(5.0)
                continue
            client_id = f"axhub-edge-{self.identity.device_id}"
            state_dir = self.home / "connector-state"
            sources = [
                build_source(mapping, p, client_id=client_id, state_dir=state_dir)
                for p in configured_protocols(mapping)
            ]
            for source in sources:
                try:
                    source.connect()
                except Exception as exc:  # sources reconnect by themselves; report and go on
                    log.warning("%s: %s", source.kind, exc)
            try:
                while not self.stop.is_set() and not self._config_changed.is_set():
                    for source in sources:
                        for delivery in source.poll(0.1):
                            if delivery.rows:
                                self.handle_batch(delivery.batch)
                            self.rejected_payloads += len(delivery.rejected)
                            delivery.ack()
                    self.sources_health = [s.health() for s in sources]
            finally:
                for source in sources:
                    try:
                        source.close()
                    except Exception as exc:
                        log.warning("closing %s: %s", source.kind, exc)

    # ------------------------------------------------------------------ inspection thread
    def _inspect_loop(self) -> None:
        """Score new images in the watched folder with the current vision bundle (no hub needed)."""
        built_for: tuple[Any, ...] | None = None
        while not self.stop.is_set():
            config, sha = self.config, self.slots.current_sha
            wanted = (config.watch_folder, config.watch_asset, config.watch_settle_s, sha)
            if not config.watch_folder or sha is None:
                self.inspector, built_for = None, None
                self.stop.wait(1.0)
                continue
            try:
                if wanted != built_for:
                    built_for = wanted
                    runner = self.slots.runner(sha)
                    self.inspector = None
                    if runner is not None and is_vision_bundle(runner):
                        self.inspector = FolderInspector(
                            runner,
                            self.home / config.watch_folder,  # an absolute folder stays absolute
                            self.buffer,
                            asset=config.watch_asset,
                            bundle_sha=sha,
                            settle_s=config.watch_settle_s,
                            on_alert=self.alerts.raise_alert,
                        )
                if self.inspector is not None:
                    self.inspector.scan()
                self._inspection_error = None
            except Exception as exc:  # a file or bundle failing must not stop the agent
                self._inspection_error = f"{type(exc).__name__}: {exc}"
                log.error("inspection failed: %s", self._inspection_error)
            self.stop.wait(config.watch_interval_s)

    def _inspection_status(self) -> dict[str, Any] | None:
        inspector = self.inspector
        if inspector is None:
            return {"error": self._inspection_error} if self._inspection_error else None
        latencies = sorted(inspector.stats.latencies_ms)
        return {
            "folder": str(inspector.folder.name),
            "images": inspector.stats.images,
            "defects": inspector.stats.defects,
            "unreadable": inspector.stats.unreadable,
            "p50_ms": round(latencies[len(latencies) // 2], 3) if latencies else None,
            "error": self._inspection_error,
        }

    # ------------------------------------------------------------------ sync thread
    def _active_bundle(self) -> dict[str, Any]:
        candidate = self._candidate
        scorer: LocalScorer | None = candidate["old"] if candidate else self.scorer
        if candidate is not None:
            return {
                "sha256": scorer.bundle_sha if scorer else self.slots.previous_sha,
                **(scorer.model if scorer else {}),
            }
        return {"sha256": self.slots.current_sha, **(scorer.model if scorer else {})}

    def status(self) -> dict[str, Any]:
        scorer = self.scorer
        candidate = self._candidate
        latencies = sorted(scorer.stats.latencies_ms) if scorer else []

        def pct(q: float) -> float | None:
            return (
                round(latencies[min(int(q * len(latencies)), len(latencies) - 1)], 3) if latencies else None
            )

        return {
            "agent_version": axhub.__version__,
            "config_version": self.config.version,
            # The bundle that passed its checks; one on trial is reported as the candidate.
            "bundle": self._active_bundle(),
            "candidate_bundle": candidate["report"]["sha256"] if candidate else None,
            "buffer": self.buffer.depth(),
            "counters": {**self.buffer.counters(), "rejected_payloads": self.rejected_payloads},
            **self._usage.sample(),
            "sources": self.sources_health,
            "scoring": {
                "rows": scorer.stats.rows if scorer else 0,
                "alerts": scorer.stats.alerts if scorer else 0,
                "p50_ms": pct(0.5),
                "p99_ms": pct(0.99),
                "error": self._scorer_error,
            },
            "inspection": self._inspection_status(),
            "last_sync_at": self.last_sync_at,
            "revoked": self.revoked,
            "last_error": self.last_error,
        }

    def _heartbeat(self) -> dict[str, Any] | None:
        status = self.status()
        write_json_atomic(self.home / STATUS_FILE, status)
        reports = list(self.bundle_reports)
        answer = self.client.heartbeat({**status, "bundle_reports": reports})
        del self.bundle_reports[: len(reports)]
        return answer

    def _apply(self, answer: dict[str, Any]) -> None:
        config = answer.get("config")
        if config is not None and int(config.get("version", 0)) > self.config.version:
            new = AgentConfig.model_validate(config)
            save_config(self.home, new)
            self.config = new
            self.buffer.quota_bytes = int(new.quota_mb * 2**20)
            with self._lock:
                sha = self.slots.current_sha
                self.scorer = self._make_scorer(sha)
            self._config_changed.set()
        target = answer.get("bundle")
        busy = self._candidate is not None
        if not busy and target and target.get("sha256") not in (self.slots.current_sha, *self.failed_bundles):
            self._update_bundle(str(target["sha256"]), target.get("rollout_id"))

    def _update_bundle(self, sha: str, rollout_id: str | None) -> None:
        report: dict[str, Any] = {"sha256": sha, "rollout_id": rollout_id}
        try:
            if not self.slots.has(sha):  # one waiting for a sample image is already here
                self.slots.install(self.client.bundle(sha), sha)
        except BundleError as exc:
            self.failed_bundles.add(sha)
            self.bundle_reports.append({**report, "outcome": "refused", "reason": str(exc)})
            log.error("bundle %s refused: %s", sha[:12], exc)
            return
        self.swap_in(sha, rollout_id)

    def swap_in(self, sha: str, rollout_id: str | None = None) -> None:
        """Switch to an installed bundle. A vision bundle is checked on the camera's newest images
        before the switch; a sensor bundle is switched and checked on the next live rows."""
        report: dict[str, Any] = {"sha256": sha, "rollout_id": rollout_id}
        if self._vision_precheck(sha, report):
            return
        old = self.scorer
        self.slots.begin_swap(sha, rollout_id)
        try:
            new = self._make_scorer(sha)
        except Exception as exc:
            self._finish_swap(report, old, f"the bundle does not load: {exc}")
            return
        if new is None:  # nothing configured to score: it loaded, that is all we can check
            self._finish_swap(report, old, None)
            return
        self._scorer_error = None
        with self._lock:
            self.scorer = new
        # Checked on later loop turns (heartbeats and syncing go on meanwhile): see _check_candidate.
        self._candidate = {"report": report, "old": old, "new": new, "deadline": time.monotonic() + 300}

    def _vision_precheck(self, sha: str, report: dict[str, Any]) -> bool:
        """Run a new vision bundle on sample images before it replaces the one inspecting parts.

        True when the update is settled here: refused (the old bundle never stops), or waiting for
        a first image (the hub announces the bundle again on the next heartbeat). With no watched
        folder configured nothing runs the bundle yet, and loading it is the check.
        """
        try:
            runner = self.slots.runner(sha)
        except Exception:
            return False  # the swap reports that it does not load (and rolls back)
        if runner is None or not is_vision_bundle(runner) or not self.config.watch_folder:
            return False
        samples = sample_images(self.home / self.config.watch_folder)
        if not samples:
            self.last_error = f"bundle {sha[:12]} waits for an image in the watched folder to be checked on"
            if self._waiting_for_sample != sha:  # said once, not at every heartbeat
                log.info(self.last_error)
                self._waiting_for_sample = sha
            return True
        self._waiting_for_sample = None
        problem = vision_health_problem(runner, samples)
        if problem is None:
            return False
        self.failed_bundles.add(sha)
        self.bundle_reports.append({**report, "outcome": "rolled_back", "reason": problem})
        log.error("vision bundle %s refused before the switch: %s", sha[:12], problem)
        return True

    def _check_candidate(self) -> None:
        """Decide on a swapped-in bundle once it has scored enough live rows (or failed)."""
        candidate = self._candidate
        if candidate is None:
            return
        new: LocalScorer = candidate["new"]
        problem = self._scorer_error
        if problem is None and len(new.recent) < self.config.health_rows:
            if time.monotonic() < candidate["deadline"]:
                return
            problem = f"no live data to check the bundle on ({len(new.recent)} rows in 5 minutes)"
        if problem is None:
            problem = health_problem(new.runner, list(new.recent), self.config.health_max_alarm_share)
        self._finish_swap(candidate["report"], candidate["old"], problem)

    def _finish_swap(self, report: dict[str, Any], old: LocalScorer | None, problem: str | None) -> None:
        self._candidate = None
        sha = str(report["sha256"])
        if problem is not None:
            with self._lock:
                self.scorer = old
            self.slots.roll_back()
            self.failed_bundles.add(sha)
            self.bundle_reports.append({**report, "outcome": "rolled_back", "reason": problem})
            log.error("bundle %s rolled back: %s", sha[:12], problem)
            return
        self.slots.commit_swap()
        self.bundle_reports.append({**report, "outcome": "active"})
        log.info("bundle %s active", sha[:12])

    def _forward(self) -> None:
        while not self.stop.is_set():
            batch = self.buffer.next_batch(self.config.batch_rows)
            if batch is None:
                return
            try:
                self.client.send(batch)
            except BatchRefused as exc:
                self.buffer.refuse(batch, str(exc))
                log.error("hub refused batch %s: %s", batch.batch_id, exc)
                continue
            self.buffer.ack(batch)
            self.last_sync_at = time.time()

    def _sync_loop(self) -> None:
        next_beat = 0.0
        while not self.stop.is_set():
            self._check_candidate()  # works without the hub
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.config.heartbeat_interval_s
                    answer = self._heartbeat()
                    if answer:
                        self._apply(answer)
                self._forward()
                self.revoked = False
                self.last_error = None
            except HubUnreachable as exc:
                self.last_error = f"hub unreachable: {exc}"
            except DeviceRevoked as exc:
                # keep everything buffered: an administrator may re-enrol the device
                self.revoked = True
                self.last_error = f"the hub refuses this device: {exc}"
                log.error(self.last_error)
                write_json_atomic(self.home / STATUS_FILE, self.status())
                self.stop.wait(30)
            except Exception as exc:  # the sync loop must outlive any one bad answer or bug
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("sync loop")
            self.stop.wait(self.config.sync_interval_s)

    # ------------------------------------------------------------------ process
    def run(self, duration_s: float | None = None) -> None:
        threads = [
            threading.Thread(target=self._ingest_loop, name="edge-ingest", daemon=True),
            threading.Thread(target=self._sync_loop, name="edge-sync", daemon=True),
            threading.Thread(target=self._inspect_loop, name="edge-inspect", daemon=True),
        ]
        for thread in threads:
            thread.start()
        self.stop.wait(duration_s)
        self.stop.set()
        for thread in threads:
            thread.join(timeout=15)
        self.alerts.close()
        self.client.close()
        self.buffer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="axhub-edge", description="AX Hub edge agent")
    parser.add_argument("--home", type=Path, required=True, help="the agent's directory")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit_malloc_arenas()  # runs for months beside the machine: resident memory must stay flat
    agent = Agent(args.home)

    def _stop(signum: int, frame: Any) -> None:
        agent.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    agent.run(args.duration)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
