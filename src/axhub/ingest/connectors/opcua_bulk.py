"""Bulk decoding of OPC UA PublishResponses: data changes as columns, not objects.

asyncua decodes every monitored item of a PublishResponse into dataclasses (a
MonitoredItemNotification, a DataValue, a Variant, a StatusCode and two datetimes), then
wraps each in a DataChangeNotif and a DataChangeEvent and queues it. At 30,000 changes/s on
two shared cores that machinery, not the network, was the limit (issue 11: about 60 % of the
source thread's time went to decoding, 30 % to the per-change objects). Here the items of a
DataChangeNotification are read straight from the bytes into lists: client handle, value,
status code and both timestamps as integer microseconds since 1970.

Everything else in the response (header, sequence numbers, event and status-change
notifications, values of non-scalar types) is still decoded by asyncua, so what is not a
plain number takes exactly the old path. Differences from asyncua's DataValue decoding, both
by the OPC UA specification (Part 6, 5.2.2.17 and 5.2.2.5): picoseconds are read after their
own timestamp (asyncua reads both timestamps first, which misreads a server that sends
picoseconds), and a DateTime of 0 is "no timestamp" (asyncua makes it 1601-01-01).
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import (
    Primitives,
    extensionobject_from_binary,
    nodeid_from_binary,
    struct_from_binary,
    unpack_uatype_array,
    variant_from_binary,
)

from axhub.ingest.connectors.opcua_resume import AckLedger

log = logging.getLogger(__name__)

# 100 ns ticks from 1601-01-01 to 1970-01-01, and the largest DateTime (9999-12-31 23:59:59).
_EPOCH_TICKS = 116_444_736_000_000_000
_MAX_TICKS = ua.uatypes.MAX_OPC_FILETIME
_MAX_US = (_MAX_TICKS - _EPOCH_TICKS) // 10

_DATA_CHANGE = ua.FourByteNodeId(ua.Int32(ua.ObjectIds.DataChangeNotification_Encoding_DefaultBinary))

_I32 = struct.Struct("<i")
_HANDLE_MASK = struct.Struct("<IB")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
# Scalar variant types read in place: VariantType id -> (struct, make a Python value).
_SCALARS: dict[int, struct.Struct] = {
    ua.VariantType.Boolean.value: struct.Struct("<?"),
    ua.VariantType.SByte.value: struct.Struct("<b"),
    ua.VariantType.Byte.value: struct.Struct("<B"),
    ua.VariantType.Int16.value: struct.Struct("<h"),
    ua.VariantType.UInt16.value: struct.Struct("<H"),
    ua.VariantType.Int32.value: struct.Struct("<i"),
    ua.VariantType.UInt32.value: struct.Struct("<I"),
    ua.VariantType.Int64.value: struct.Struct("<q"),
    ua.VariantType.UInt64.value: struct.Struct("<Q"),
    ua.VariantType.Float.value: struct.Struct("<f"),
    ua.VariantType.Double.value: struct.Struct("<d"),
}
_SCALAR_READERS = {k: (s.unpack_from, s.size) for k, s in _SCALARS.items()}


def ticks_to_us(ticks: int) -> int | None:
    """An OPC UA DateTime (100 ns since 1601) as microseconds since 1970; 0 (or less) is none."""
    if ticks <= 0:
        return None
    if ticks >= _MAX_TICKS:
        return _MAX_US
    return (ticks - _EPOCH_TICKS) // 10


@dataclass(slots=True)
class DataChanges:
    """The items of one DataChangeNotification, as columns (one entry per item)."""

    handles: list[int] = field(default_factory=list)
    # bool / int / float for scalar numbers, None for no value, else what asyncua decodes.
    values: list[Any] = field(default_factory=list)
    status: list[int] = field(default_factory=list)  # StatusCode value, 0 (Good) if not sent
    source_us: list[int | None] = field(default_factory=list)
    server_us: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.handles)


def decode_data_changes(body: bytes) -> DataChanges:
    """The binary body of a DataChangeNotification (MonitoredItems, DiagnosticInfos ignored)."""
    out = DataChanges()
    handles, values, statuses, sources, servers = (
        out.handles,
        out.values,
        out.status,
        out.source_us,
        out.server_us,
    )
    (count,) = _I32.unpack_from(body, 0)
    pos = 4
    handle_mask = _HANDLE_MASK.unpack_from
    u32 = _U32.unpack_from
    i64 = _I64.unpack_from
    readers = _SCALAR_READERS
    for _ in range(max(count, 0)):
        handle, mask = handle_mask(body, pos)
        pos += 5
        value: Any = None
        if mask & 0x01:
            encoding = body[pos]
            reader = readers.get(encoding)  # a scalar (no array or dimension bits) we read here
            if reader is not None:
                value = reader[0](body, pos + 1)[0]
                pos += 1 + reader[1]
            else:
                buf = Buffer(body, pos)
                value = variant_from_binary(buf).Value
                pos = buf.cur_pos
        status = 0
        if mask & 0x02:
            (status,) = u32(body, pos)
            pos += 4
        source = server = None
        if mask & 0x04:
            source = ticks_to_us(i64(body, pos)[0])
            pos += 8
        if mask & 0x10:
            pos += 2  # SourcePicoseconds: below our microsecond resolution
        if mask & 0x08:
            server = ticks_to_us(i64(body, pos)[0])
            pos += 8
        if mask & 0x20:
            pos += 2
        handles.append(handle)
        values.append(value)
        statuses.append(status)
        sources.append(source)
        servers.append(server)
    return out


def _decode_notification_message(data: Buffer) -> ua.NotificationMessage:
    """A NotificationMessage whose DataChangeNotifications are ``DataChanges`` (the rest as asyncua)."""
    sequence = Primitives.UInt32.unpack(data)
    publish_time = Primitives.DateTime.unpack(data)
    notifications: list[Any] = []
    for _ in range(max(Primitives.Int32.unpack(data), 0)):
        peek = data.copy()
        if nodeid_from_binary(peek) == _DATA_CHANGE and ord(peek.read(1)) == 1:
            length = Primitives.Int32.unpack(peek)
            notifications.append(decode_data_changes(bytes(peek.read(length))))
            data.skip(len(data) - len(peek))
        else:
            notifications.append(extensionobject_from_binary(data))
    return ua.NotificationMessage(
        SequenceNumber=sequence, PublishTime=publish_time, NotificationData=notifications
    )


def decode_publish_response(data: Buffer) -> ua.PublishResponse:
    """A PublishResponse whose DataChangeNotifications are ``DataChanges`` (the rest as asyncua)."""
    typeid = nodeid_from_binary(data)
    header = struct_from_binary(ua.ResponseHeader, data)
    subscription_id = Primitives.UInt32.unpack(data)
    available = unpack_uatype_array(ua.VariantType.UInt32, data) or []
    more = Primitives.Boolean.unpack(data)
    message = _decode_notification_message(data)
    results = unpack_uatype_array(ua.VariantType.StatusCode, data) or []
    diagnostics = unpack_uatype_array(ua.VariantType.DiagnosticInfo, data) or []
    return ua.PublishResponse(
        TypeId=typeid,
        ResponseHeader=header,
        Parameters=ua.PublishResult(
            SubscriptionId=subscription_id,
            AvailableSequenceNumbers=available,
            MoreNotifications=more,
            NotificationMessage=message,
            Results=results,
            DiagnosticInfos=diagnostics,
        ),
    )


async def republish(session: Any, subscription_id: int, sequence: int) -> ua.NotificationMessage:
    """The server's copy of an unacknowledged NotificationMessage (Republish), decoded in bulk.

    Raises ``UaStatusCodeError`` (e.g. BadMessageNotAvailable) when the server no longer has it.
    """
    request = ua.RepublishRequest()
    request.Parameters.SubscriptionId = subscription_id
    request.Parameters.RetransmitSequenceNumber = sequence
    data = await session._send_request(request)
    nodeid_from_binary(data)  # the response's type id
    header = struct_from_binary(ua.ResponseHeader, data)
    header.ServiceResult.check()
    return _decode_notification_message(data)


def install(
    session: Any,
    subscription: Any,
    on_changes: Callable[[DataChanges], None],
    ledger: AckLedger | None = None,
) -> bool:
    """Decode the session's PublishResponses in bulk; the subscription's data changes go to
    ``on_changes``, everything else to asyncua's own subscription callback as before.

    With ``ledger``, a message whose data changes went to ``on_changes`` is acknowledged to
    the server only once the ledger says they are stored (``opcua_resume``); a message that
    carried none (events, status changes, a response only asyncua could decode) is
    acknowledged at once, as asyncua does.

    Call it right after creating the subscription (before its monitored items): a response
    already on its way is decoded by asyncua and reaches asyncua's callback through ours. A
    response the bulk decoder cannot read is decoded again by asyncua, so nothing is lost to
    a gap in the decoder. Uses asyncua internals (``_send_request``, ``_subscription_callbacks``):
    False, and nothing changed, where they are missing.
    """
    send = getattr(session, "_send_request", None)
    callbacks = getattr(session, "_subscription_callbacks", None)
    sub_id = getattr(subscription, "subscription_id", None)
    if send is None or not isinstance(callbacks, dict) or sub_id not in callbacks:
        return False
    fallback: Callable[[ua.PublishResult], Awaitable[None]] = subscription.publish_callback

    async def publish(acks: list[ua.SubscriptionAcknowledgement]) -> ua.PublishResponse:
        if ledger is not None:  # asyncua's acks (everything decoded) give way to the stored ones
            acks = ledger.take()
        request = ua.PublishRequest()
        request.Parameters.SubscriptionAcknowledgements = acks if acks else []
        try:
            data = await send(request, timeout=0)
        except BaseException:
            if ledger is not None:
                ledger.give_back(acks)
            raise
        again = data.copy()
        try:
            return decode_publish_response(data)
        except Exception:
            log.debug("bulk decoding failed; asyncua decodes this response", exc_info=True)
            response: ua.PublishResponse = struct_from_binary(ua.PublishResponse, again)
            return response

    async def callback(result: ua.PublishResult) -> None:
        message = result.NotificationMessage
        data = message.NotificationData or []
        rest = [n for n in data if not isinstance(n, DataChanges)]
        changes = [n for n in data if isinstance(n, DataChanges)]
        for n in changes:
            on_changes(n)
        if ledger is not None and data:
            key = (int(result.SubscriptionId), int(message.SequenceNumber))
            if changes:
                ledger.received(*key)
            else:
                ledger.durable([key])
        if rest or not data:  # keep-alives, events, status changes: asyncua's callback as before
            message.NotificationData = rest
            await fallback(result)
        else:  # asyncua's bookkeeping (used by its stale-subscription watchdog)
            subscription.last_publish_at = time.monotonic()
            subscription.last_sequence_number = int(message.SequenceNumber)

    session.publish = publish
    callbacks[sub_id] = callback
    return True
