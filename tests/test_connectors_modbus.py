"""Modbus TCP connector: register decoding, block planning, and a real pymodbus server."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pyarrow as pa
import pytest

from axhub.bench._broker import free_port
from axhub.ingest.connectors.base import Delivery
from axhub.ingest.connectors.modbus import ModbusSource, plan_blocks
from axhub.ingest.tag_mapping import ModbusConfig, ModbusRegister
from axhub.sim.live import LiveTag, ModbusPlantServer


def reg(**kw: object) -> ModbusRegister:
    return ModbusRegister.model_validate({"address": 0, "asset": "press-1", "signal": "s", **kw})


def test_decode_types_and_orders() -> None:
    assert reg(type="int16").decode([0xFFFE]) == -2
    assert reg(type="uint16", scale=0.1).decode([1234]) == pytest.approx(123.4)
    assert reg(type="int32").decode([0xFFFF, 0xFFFE]) == -2
    assert reg(type="int32", word_order="little").decode([0xFFFE, 0xFFFF]) == -2
    assert reg(type="uint32").decode([0x0001, 0x0000]) == 65536
    hi, lo = struct.unpack(">HH", struct.pack(">f", 3.5))
    assert reg(type="float32").decode([hi, lo]) == 3.5
    assert reg(type="float32", word_order="little").decode([lo, hi]) == 3.5
    swap = lambda w: ((w & 0xFF) << 8) | (w >> 8)  # noqa: E731
    assert reg(type="float32", byte_order="little").decode([swap(hi), swap(lo)]) == 3.5
    assert reg(type="int16", scale=0.5, offset=-10).decode([100]) == 40.0
    with pytest.raises(ValueError, match="needs 2 registers"):
        reg(type="float32").decode([1])


@pytest.mark.parametrize("kind", ["int16", "uint16", "int32", "uint32", "float32"])
@pytest.mark.parametrize("order", [("big", "big"), ("little", "little"), ("big", "little")])
def test_encode_decode_round_trip(kind: str, order: tuple[str, str]) -> None:
    tag = reg(type=kind, byte_order=order[0], word_order=order[1], scale=0.5)
    value = -12.5 if kind in {"int16", "int32", "float32"} else 12.5
    assert tag.decode(tag.encode(value)) == value


def test_blocks_group_close_registers_of_one_kind() -> None:
    regs = [reg(address=0, type="float32"), reg(address=2), reg(address=40), reg(address=3, kind="input")]
    blocks = plan_blocks(regs)
    assert [(b.kind, b.start, b.count, len(b.tags)) for b in blocks] == [
        ("holding", 0, 3, 2),
        ("holding", 40, 1, 1),
        ("input", 3, 1, 1),
    ]
    many = [reg(address=i) for i in range(300)]
    assert all(b.count <= 125 for b in plan_blocks(many)) and sum(b.count for b in plan_blocks(many)) == 300


class ServerThread:
    def __init__(self, server: ModbusPlantServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]


@pytest.fixture
def plant() -> Iterator[ServerThread]:
    tags = [LiveTag("press-1", "force"), LiveTag("press-1", "temp")]
    st = ServerThread(ModbusPlantServer(tags, port=free_port()))
    st.call(st.server.start())
    yield st
    st.call(st.server.stop())
    st.loop.call_soon_threadsafe(st.loop.stop)


def _latest(deliveries: list[Delivery]) -> dict[str, float | None]:
    table = pa.concat_tables([d.batch for d in deliveries])
    return {r["signal"]: r["value"] for r in table.to_pylist()}


def wait_values(
    source: ModbusSource,
    got: list[Delivery],
    cond: Callable[[dict[str, float | None]], bool],
    timeout: float = 10,
) -> dict[str, float | None]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got.extend(source.poll(0.05))
        if got and cond(_latest(got)):
            break
    return _latest(got) if got else {}


def test_polls_real_server_and_resumes_after_restart(plant: ServerThread) -> None:
    server = plant.server
    server.set("press-1", "force", 1234.5)
    server.set_raw("input", 10, reg(type="int32", word_order="little").encode(-70000))
    server.set_raw("holding", 20, reg(type="int16", scale=0.1).encode(-12.3))
    cfg = ModbusConfig.model_validate(
        {
            "port": server.port,
            "poll_interval_ms": 20,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
            "registers": [
                {"address": 0, "type": "float32", "asset": "press-1", "signal": "force"},
                {
                    "address": 10,
                    "kind": "input",
                    "type": "int32",
                    "word_order": "little",
                    "asset": "press-1",
                    "signal": "counter",
                },
                {"address": 20, "type": "int16", "scale": 0.1, "asset": "press-1", "signal": "temp"},
            ],
        }
    )
    source = ModbusSource(cfg)
    source.connect()
    got: list[Delivery] = []
    try:
        assert source.wait_connected(5)
        values = wait_values(source, got, lambda v: v.get("force") == 1234.5)
        assert values == {"force": 1234.5, "counter": -70000.0, "temp": pytest.approx(-12.3)}
        plant.call(server.stop())
        time.sleep(0.3)
        server.set("press-1", "force", 99.0)
        plant.call(server.start())
        values = wait_values(source, got, lambda v: v.get("force") == 99.0, timeout=15)
        assert values["force"] == 99.0
        assert source.connects >= 2 and source.failures >= 1
    finally:
        source.close()
    table = pa.concat_tables([d.batch for d in got])
    assert set(table["quality"].to_pylist()) == {0}
    # One timestamp per poll, never repeated.
    stamps = table.filter(pa.compute.equal(table["signal"], "force"))["ts"].to_pylist()
    assert len(stamps) == len(set(stamps))
