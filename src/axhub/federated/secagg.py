"""The Flower apps of a run with secure aggregation (SecAgg+), loaded by Flower's own
SuperLink (``server_app``) and by each member's SuperNode (``client_app``).

The server runs FedAvg/FedProx through Flower's ``SecAggPlusWorkflow``: every member masks its
(already clipped and noised, if its policy says so) parameters with pairwise and private masks
in ``secaggplus_mod`` before they leave, and the server only ever learns their weighted sum.
Each member's client is the same ``MemberClient`` as in the plain deployment, built with
``secure_aggregation=True`` because this client app masks whatever it sends: a member whose
policy requires secure aggregation trains here and nowhere else.

A SuperNode starts a fresh process for every message, so what a member must remember between
rounds (rounds trained, ε released) lives in the run's ``Context.state`` kept by its own
SuperNode, never on the server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
from flwr.client import Client, ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.common import ConfigRecord, Context, Message, RecordDict, bytes_to_ndarray
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, RECORD_KEY_STATE, Key
from flwr.compat.common.recorddict_compat import recorddict_to_fitres
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

from axhub.federated.client import MemberClient

MEMBER_STATE = "axhub_member"  # the member's own memory between rounds, in its SuperNode

# SecAgg+ quantises each weighted parameter into [-CLIP, CLIP] with 2**22 levels: a step of
# 2·CLIP/2**22 (≈ 4e-6 for CLIP 8) per member, so the aggregate is FedAvg within a few 1e-5.
CLIPPING_RANGE = 8.0


# -- member side -------------------------------------------------------------------------------
class SecAggMember(NumPyClient):
    """``MemberClient`` behind SecAgg+: keeps its round count and ε ledger in the SuperNode's
    context, appends what it handed over to its own wire log, and answers a refusal with zero
    weight (the masked sum needs every member's vector; a zero-weight one adds nothing)."""

    def __init__(self, inner: MemberClient, context: Context, out: Path) -> None:
        self.inner = inner
        self.ctx = context
        self.out = out
        saved = context.state.config_records.get(MEMBER_STATE)
        if saved is not None:
            inner.round = cast(int, saved["round"])
            if inner.ledger is not None:
                inner.ledger.rounds_released = cast(int, saved["released"])
        # Every message is a fresh process: fresh OS entropy each time; a repeatable
        # ``noise_seed`` (benchmarks, tests) must carry the round, or each round would draw the
        # same DP noise and differences of rounds would cancel it.
        if inner.noise_seed is not None:
            inner.rng = np.random.default_rng([inner.noise_seed, inner.round])

    def _save(self) -> None:
        ledger = self.inner.ledger
        self.ctx.state.config_records[MEMBER_STATE] = ConfigRecord(
            {"round": self.inner.round, "released": ledger.rounds_released if ledger else 0}
        )
        path = self.out / f"{self.inner.member}.json"
        sent = json.loads(path.read_text())["sent"] if path.exists() else []
        sent.extend(self.inner.wire.sent)
        self.inner.wire.sent.clear()
        path.write_text(
            json.dumps({"sent": sent, "epsilon_spent": ledger.spent if ledger else None}, default=float)
        )

    def _max_weight(self) -> float:
        state = self.ctx.state.config_records.get(RECORD_KEY_STATE)
        return float(state["max_weight"]) if state is not None else float("inf")  # type: ignore[arg-type]

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        new, weight, metrics = self.inner.fit(parameters, config)
        if not new:
            new, weight = [np.zeros_like(p) for p in parameters], 0
        # Above SecAgg+'s max_weight the quantised sum would overflow: such a member counts as
        # max_weight rows (the run's setting says how large that is).
        weight = int(min(weight, self._max_weight()))
        self._save()
        return new, weight, metrics

    def evaluate(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        result = self.inner.evaluate(parameters, config)
        self._save()
        return result


def _client_fn(context: Context) -> Client:
    from axhub.federated.process import member_client

    spec = json.loads(Path(str(context.node_config["member-spec"])).read_text())
    out = Path(str(context.node_config["out"]))
    out.mkdir(parents=True, exist_ok=True)
    inner = member_client(spec, secure_aggregation=True)
    return SecAggMember(inner, context, out).to_client()


client_app = ClientApp(client_fn=_client_fn, mods=[secaggplus_mod])


# -- hub side ----------------------------------------------------------------------------------
class RecordingGrid(Grid):
    """The server's grid, keeping what each member's reply carried to the server: the masked
    vector SecAgg+ collects, and any plain arrays (there should be none)."""

    def __init__(self, inner: Grid) -> None:
        self.inner = inner
        self.received: list[dict[str, Any]] = []

    def set_run(self, run: Any) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Any:
        return self.inner.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.inner.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = list(self.inner.pull_messages(message_ids))
        self._keep(replies)
        return replies

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        # Flower's own loop looks for replies every 3 s; a SecAgg+ round is five exchanges,
        # so asking every 0.2 s saves seconds per round (the SuperLink answers from its store).
        waiting = set(self.inner.push_messages(messages))
        end = time.monotonic() + timeout if timeout is not None else None
        replies: list[Message] = []
        while waiting and (end is None or time.monotonic() < end):
            got = list(self.inner.pull_messages(waiting))
            replies.extend(got)
            waiting.difference_update(m.metadata.reply_to_message_id for m in got)
            if waiting:
                time.sleep(0.2)
        self._keep(replies)
        return replies

    def _keep(self, replies: list[Message]) -> None:
        for msg in replies:
            if msg.has_error():
                continue
            configs = msg.content.config_records.get(RECORD_KEY_CONFIGS)
            if configs is None or Key.MASKED_PARAMETERS not in configs:
                continue
            member = str(recorddict_to_fitres(msg.content, keep_input=True).metrics.get("member", "?"))
            masked = [bytes_to_ndarray(b) for b in cast(list[bytes], configs[Key.MASKED_PARAMETERS])]
            self.received.append(
                {
                    "member": member,
                    "round": int(msg.metadata.group_id or 0),
                    "masked": masked,
                    "plain_arrays": sum(len(a) for a in msg.content.array_records.values()),
                }
            )


def run_server(spec: dict[str, Any], grid: Grid, context: Context) -> dict[str, Any]:
    from flwr.common import ndarrays_to_parameters

    from axhub.federated.learner import FedTask, build_net, get_params
    from axhub.federated.strategy import RecordingFedAvg

    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    task = FedTask.from_json(spec["task"])
    rounds = int(spec["rounds"])
    strategy = RecordingFedAvg(
        n_members=int(spec["n_members"]),
        proximal_mu=task.proximal_mu,
        secure_aggregation=True,
        num_rounds=rounds,
        progress_path=out / "progress.json",
        initial_parameters=ndarrays_to_parameters(get_params(build_net(task))),
        accept_failures=False,
    )
    workflow = DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(
            # Every member holds a share of every other's keys, and all of them are needed to
            # unmask: the strongest setting, as a run needs every member anyway.
            num_shares=1.0,
            reconstruction_threshold=1.0,
            max_weight=float(spec.get("max_weight", 10_000)),
            clipping_range=CLIPPING_RANGE,
            timeout=float(spec.get("round_timeout", 600)),
        )
    )
    grid_log = RecordingGrid(grid)
    started = time.perf_counter()
    try:
        workflow(
            grid_log,
            LegacyContext(context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy),
        )
    except Exception as exc:  # a failed protocol ends the run, with its reason
        strategy.stopped = strategy.stopped or f"secure aggregation failed: {exc}"
    if strategy.final_parameters is None and not strategy.stopped:
        strategy.stopped = "secure aggregation halted (a member dropped out)"
    for item in grid_log.received:
        for rec in strategy.records:
            if rec.round == item["round"]:
                rec.bytes_up += int(sum(a.nbytes for a in item["masked"]))
    summary = strategy.summary()
    summary["seconds"] = time.perf_counter() - started
    summary["secure_aggregation"] = "secagg+"
    received = out / "received"
    received.mkdir(exist_ok=True)
    summary["received"] = []
    for item in grid_log.received:
        name = f"{item['member']}-round{item['round']}.npz"
        np.savez(received / name, *item["masked"])
        summary["received"].append(
            {
                "member": item["member"],
                "round": item["round"],
                "file": name,
                "plain_arrays": item["plain_arrays"],
            }
        )
    if strategy.final_parameters is not None:
        np.savez(out / "joint.npz", *strategy.final_parameters)
    tmp = out / "summary.tmp"
    tmp.write_text(json.dumps(summary, default=float))
    tmp.replace(out / "summary.json")  # the launcher never reads half a file
    return summary


server_app = ServerApp()


@server_app.main()
def _main(grid: Grid, context: Context) -> None:
    spec = json.loads(Path(str(context.run_config["spec"])).read_text())
    try:
        run_server(spec, grid, context)
    except Exception as exc:
        # The launcher waits for summary.json: a crash must leave its reason there too.
        Path(spec["out"]).mkdir(parents=True, exist_ok=True)
        (Path(spec["out"]) / "summary.json").write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        raise
