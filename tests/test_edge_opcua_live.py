"""End to end over OPC UA (issue 15): the simulator's OPC UA server → the agent as its own process
(local connector, durable buffer) → the hub under uvicorn. Every value the machine wrote arrives
at the hub exactly once, with its source timestamp, on Korean signal names."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from _edge import korean_frames, values_of
from _live import Live, free_port, live_server
from axhub.sim.live import LiveTag, OpcUaPlantServer
from test_edge_live import ASSET, AgentProc, device, enrol, hub_readings, synced_reading_rows, wait_for

pytestmark = [pytest.mark.slow]


class PlantThread:
    """The simulator's OPC UA server on its own event loop (the test drives it from outside)."""

    def __init__(self, tags: list[LiveTag], port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = OpcUaPlantServer(tags, port=port)
        self.call(self.server.start())

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.call(self.server.stop())
        self.call(self._cancel_the_rest())  # asyncua's session loops, so the loop stops clean
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    @staticmethod
    async def _cancel_the_rest() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture()
def hub(tmp_path: Path) -> Iterator[Live]:
    with live_server(tmp_path / "hub", f"sqlite:///{tmp_path / 'hub' / 'meta.db'}") as live:
        yield live


@pytest.fixture()
def agents() -> Iterator[list[AgentProc]]:
    started: list[AgentProc] = []
    yield started
    for agent in started:
        agent.stop()


@pytest.fixture()
def plant() -> Iterator[tuple[PlantThread, int]]:
    port = free_port()
    frame_columns = [c for c in korean_frames(rows=2).columns if c != "ts"]
    server = PlantThread([LiveTag(ASSET, c) for c in frame_columns], port)
    yield server, port
    server.close()


def test_opcua_readings_reach_the_hub_exactly_once(
    hub: Live, agents: list[AgentProc], plant: tuple[PlantThread, int], tmp_path: Path
) -> None:
    server, port = plant
    frame = korean_frames(rows=60)
    agent = AgentProc(tmp_path / "agent")
    agents.append(agent)
    device_id = enrol(hub, agent.home, "프레스 1 OPC UA 게이트웨이")
    config = {
        "connectors": {
            "opcua": {
                "endpoint": f"opc.tcp://127.0.0.1:{port}",
                "browse": [
                    {"root": f"ns={server.server.ns};s=Plant", "asset": "{parent}", "signal": "{name}"}
                ],
            }
        },
        "sync_interval_s": 0.2,
        "heartbeat_interval_s": 0.5,
        "batch_rows": 100,  # several batches
    }
    with hub.client("a_engineer") as c:
        r = c.put(f"/api/v1/edge/devices/{device_id}/config", json={"config": config})
        assert r.status_code == 200, r.text
    agent.start()
    wait_for(
        "OPC UA subscribed", lambda: any(s.get("connected") for s in agent.status().get("sources", [])), 30
    )
    first = wait_for("the initial values", lambda: synced_reading_rows(hub), 30)

    async def play() -> None:
        for _, row in frame.iterrows():
            when = row["ts"].to_pydatetime()
            for signal in frame.columns[1:]:
                await server.server.write(ASSET, signal, float(row[signal]), when)
            await asyncio.sleep(0.01)

    server.call(play())
    served = values_of(frame, ASSET)
    wait_for("every value at the hub", lambda: served <= hub_readings(hub), 60)
    wait_for("buffer drained", lambda: (s := agent.status()) and s["buffer"]["total"] == 0, 30)

    # the series the machine wrote in its window, nothing altered and nothing more
    assert hub_readings(hub) == served
    # exactly once: rows synced in batches = rows the agent sent = what was written, plus the
    # variables' values at subscription time (stamped when the server started, outside the window)
    assert synced_reading_rows(hub) == len(served) + first
    assert agent.status()["counters"]["sent_readings"] == len(served) + first
    assert device(hub, device_id)["online"]
