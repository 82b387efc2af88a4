"""Bulk decoding of PublishResponses (``opcua_bulk``) against asyncua's own decoder.

Responses are encoded by asyncua, then decoded both ways: the bulk path must give the same
values, status codes (hence qualities) and timestamps as asyncua's objects, and the source
must turn both into the same rows and the same rejections.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

from axhub.ingest.connectors.opcua import OpcUaSource, Tag, code_to_quality, status_to_quality
from axhub.ingest.connectors.opcua_bulk import DataChanges, decode_data_changes, decode_publish_response
from axhub.ingest.tag_mapping import OpcUaConfig, OpcUaNode

T0 = datetime(2026, 12, 5, 21, 0, 0, 123457, tzinfo=UTC)
GOOD, UNCERTAIN, BAD = 0, ua.StatusCodes.UncertainLastUsableValue, ua.StatusCodes.BadSensorFailure


def _exact_us(when: datetime | None) -> int | None:
    return None if when is None else (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _items() -> list[ua.MonitoredItemNotification]:
    """One item per case the decoder must get right."""
    cases: list[tuple[ua.Variant | None, int | None, datetime | None, datetime | None]] = [
        (ua.Variant(21.5, ua.VariantType.Double), GOOD, T0, T0 + timedelta(milliseconds=3)),
        (ua.Variant(0.1, ua.VariantType.Float), UNCERTAIN, T0, None),
        (ua.Variant(-123456789, ua.VariantType.Int32), BAD, None, T0),
        (ua.Variant(2**62 + 1, ua.VariantType.Int64), None, T0, None),
        (ua.Variant(2**64 - 1, ua.VariantType.UInt64), GOOD, T0, None),
        (ua.Variant(True, ua.VariantType.Boolean), GOOD, T0, None),
        (ua.Variant(-7, ua.VariantType.SByte), GOOD, T0, None),
        (ua.Variant(200, ua.VariantType.Byte), GOOD, T0, None),
        (ua.Variant(-300, ua.VariantType.Int16), GOOD, T0, None),
        (ua.Variant(60000, ua.VariantType.UInt16), GOOD, T0, None),
        (ua.Variant(4_000_000_000, ua.VariantType.UInt32), GOOD, T0, None),
        (ua.Variant(float("nan"), ua.VariantType.Double), GOOD, T0, None),
        (ua.Variant("running", ua.VariantType.String), GOOD, T0, None),
        (ua.Variant([1.0, 2.0], ua.VariantType.Double), GOOD, T0, None),
        (ua.Variant(None), BAD, T0, None),
        (None, GOOD, None, None),
    ]
    items = []
    for handle, (variant, status, source, server) in enumerate(cases, start=200):
        dv = ua.DataValue(
            Value=variant,
            StatusCode=None if status is None else ua.StatusCode(status),
            SourceTimestamp=source,
            ServerTimestamp=server,
        )
        items.append(ua.MonitoredItemNotification(ClientHandle=handle, Value=dv))
    return items


def _response(items: list[ua.MonitoredItemNotification]) -> bytes:
    message = ua.NotificationMessage(
        SequenceNumber=7,
        PublishTime=T0,
        NotificationData=[
            ua.DataChangeNotification(MonitoredItems=items),
            ua.StatusChangeNotification(Status=ua.StatusCode(ua.StatusCodes.GoodSubscriptionTransferred)),
        ],
    )
    result = ua.PublishResult(
        SubscriptionId=42,
        AvailableSequenceNumbers=[6, 7],
        MoreNotifications=False,
        NotificationMessage=message,
    )
    return struct_to_binary(ua.PublishResponse(Parameters=result))


def _same(a: Any, b: Any) -> bool:
    return a == b or (a != a and b != b)  # NaN is NaN


def test_bulk_decoding_matches_asyncua_value_status_and_timestamps() -> None:
    raw = _response(_items())
    reference = struct_from_binary(ua.PublishResponse, Buffer(raw))
    ours = decode_publish_response(Buffer(raw))

    assert ours.Parameters.SubscriptionId == 42
    assert ours.Parameters.AvailableSequenceNumbers == [6, 7]
    assert ours.Parameters.NotificationMessage.SequenceNumber == 7
    changes, status_change = ours.Parameters.NotificationMessage.NotificationData
    ref_changes, ref_status = reference.Parameters.NotificationMessage.NotificationData
    assert status_change == ref_status  # not a data change: decoded by asyncua as before
    assert isinstance(changes, DataChanges) and len(changes) == len(ref_changes.MonitoredItems) == 16
    for i, item in enumerate(ref_changes.MonitoredItems):
        dv = item.Value
        value = dv.Value.Value if dv.Value is not None else None
        assert changes.handles[i] == item.ClientHandle
        assert _same(changes.values[i], value), (i, changes.values[i], value)
        assert type(changes.values[i]) is type(value)
        assert changes.status[i] == dv.StatusCode.value
        assert code_to_quality(changes.status[i]) == status_to_quality(dv.StatusCode)
        assert changes.source_us[i] == _exact_us(dv.SourceTimestamp)
        assert changes.server_us[i] == _exact_us(dv.ServerTimestamp)
    assert changes.source_us[0] == int(T0.timestamp()) * 1_000_000 + 123457


def test_picoseconds_are_read_after_their_own_timestamp() -> None:
    """Spec order (Part 6, DataValue): Value, Status, SourceTimestamp, SourcePicoseconds,
    ServerTimestamp, ServerPicoseconds."""
    ticks = (_exact_us(T0) or 0) * 10 + 116_444_736_000_000_000
    body = (
        struct.pack("<i", 1)
        + struct.pack("<IB", 9, 0x01 | 0x04 | 0x08 | 0x10 | 0x20)
        + bytes([ua.VariantType.Double.value])
        + struct.pack("<d", 1.5)
        + struct.pack("<qH", ticks, 500)
        + struct.pack("<qH", ticks + 20, 900)
        + struct.pack("<i", -1)
    )
    changes = decode_data_changes(body)
    assert changes.values == [1.5]
    assert changes.source_us == [_exact_us(T0)]
    assert changes.server_us == [(_exact_us(T0) or 0) + 2]
    assert changes.status == [0]


def test_zero_datetime_is_no_timestamp() -> None:
    body = struct.pack("<i", 1) + struct.pack("<IB", 1, 0x04) + struct.pack("<q", 0) + struct.pack("<i", -1)
    assert decode_data_changes(body).source_us == [None]


def _source() -> OpcUaSource:
    nodes = [OpcUaNode(node=f"ns=1;s=t{i}", asset="press-1", signal=f"t{i}") for i in range(16)]
    source = OpcUaSource(OpcUaConfig(endpoint="opc.tcp://127.0.0.1:4840", nodes=nodes))
    source.tags = {n.node: Tag(n.asset, n.signal, n) for n in nodes}
    return source


def test_bulk_and_per_change_paths_give_the_same_rows_and_rejections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.time_ns", lambda: 1_700_000_000_000_000_000)  # time received
    raw = _response(_items())
    reference = struct_from_binary(ua.PublishResponse, Buffer(raw))
    old = _source()
    for i, item in enumerate(reference.Parameters.NotificationMessage.NotificationData[0].MonitoredItems):
        value = item.Value.Value.Value if item.Value.Value is not None else None
        old._on_change(f"ns=1;s=t{i}", value, item.Value)

    new = _source()
    new._handles = {200 + i: (f"ns=1;s=t{i}", new.tags[f"ns=1;s=t{i}"]) for i in range(16)}
    new._on_changes(decode_publish_response(Buffer(raw)).Parameters.NotificationMessage.NotificationData[0])

    assert new.notifications == old.notifications == 16
    old_rows = [list(col) for col in old._rows]
    new_rows = [list(col) for col in new._rows]
    assert len(new_rows[0]) == 13  # rejected: a string, an array, a UInt64 beyond int64
    for a, b in zip(old_rows, new_rows, strict=True):
        assert all(_same(x, y) for x, y in zip(a, b, strict=True)), (a, b)
    assert [(r.origin, r.reason) for r in new._rejected] == [(r.origin, r.reason) for r in old._rejected]
    assert len(new._rejected) == 3
    assert new_rows[2][-1] == 1_700_000_000_000_000  # no timestamp at all: the time received
