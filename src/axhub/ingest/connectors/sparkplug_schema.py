"""The Sparkplug B payload schema (Eclipse Sparkplug 3.0, ``sparkplug_b.proto``), built with the
``protobuf`` package's descriptor API instead of generated code: no protoc step, no generated
file to keep in step with the protobuf runtime.

Only the parts a reading needs are declared: the payload (timestamp, metrics, seq), a metric
(name, alias, timestamp, datatype, flags, properties and the scalar values) and property sets.
Field numbers are the specification's, so everything else a gateway sends (data sets, templates,
metadata, extensions) decodes as unknown fields and is left alone.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
PACKAGE = "org.eclipse.tahu.protobuf"

# Sparkplug B data types (spec section 6.4.16).
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT = 9, 10, 11, 12, 13, 14
DATATYPE_NAMES = {
    0: "Unknown",
    1: "Int8",
    2: "Int16",
    3: "Int32",
    4: "Int64",
    5: "UInt8",
    6: "UInt16",
    7: "UInt32",
    8: "UInt64",
    9: "Float",
    10: "Double",
    11: "Boolean",
    12: "String",
    13: "DateTime",
    14: "Text",
    15: "UUID",
    16: "DataSet",
    17: "Bytes",
    18: "File",
    19: "Template",
    20: "PropertySet",
    21: "PropertySetList",
}


def _message(
    parent: Any, name: str, fields: list[tuple[str, int, int, int, str | None, int | None]], oneofs: list[str]
) -> None:
    """Declare a message: fields are (name, number, label, type, type_name, oneof index)."""
    msg = parent.add(name=name)
    for oneof in oneofs:
        msg.oneof_decl.add(name=oneof)
    for fname, number, label, ftype, type_name, oneof_index in fields:
        field = msg.field.add(name=fname, number=number, label=label, type=ftype)
        if type_name:
            field.type_name = type_name
        if oneof_index is not None:
            field.oneof_index = oneof_index


def _file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(name="axhub/sparkplug_b.proto", package=PACKAGE, syntax="proto2")
    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    p = f".{PACKAGE}.Payload"
    payload = f.message_type.add(name="Payload")
    payload.field.add(name="timestamp", number=1, label=opt, type=_F.TYPE_UINT64)
    payload.field.add(name="metrics", number=2, label=rep, type=_F.TYPE_MESSAGE, type_name=f"{p}.Metric")
    payload.field.add(name="seq", number=3, label=opt, type=_F.TYPE_UINT64)
    payload.field.add(name="uuid", number=4, label=opt, type=_F.TYPE_STRING)
    payload.field.add(name="body", number=5, label=opt, type=_F.TYPE_BYTES)
    _message(
        payload.nested_type,
        "PropertyValue",
        [
            ("type", 1, opt, _F.TYPE_UINT32, None, None),
            ("is_null", 2, opt, _F.TYPE_BOOL, None, None),
            ("int_value", 3, opt, _F.TYPE_UINT32, None, 0),
            ("long_value", 4, opt, _F.TYPE_UINT64, None, 0),
            ("float_value", 5, opt, _F.TYPE_FLOAT, None, 0),
            ("double_value", 6, opt, _F.TYPE_DOUBLE, None, 0),
            ("boolean_value", 7, opt, _F.TYPE_BOOL, None, 0),
            ("string_value", 8, opt, _F.TYPE_STRING, None, 0),
        ],
        ["value"],
    )
    _message(
        payload.nested_type,
        "PropertySet",
        [
            ("keys", 1, rep, _F.TYPE_STRING, None, None),
            ("values", 2, rep, _F.TYPE_MESSAGE, f"{p}.PropertyValue", None),
        ],
        [],
    )
    _message(
        payload.nested_type,
        "Metric",
        [
            ("name", 1, opt, _F.TYPE_STRING, None, None),
            ("alias", 2, opt, _F.TYPE_UINT64, None, None),
            ("timestamp", 3, opt, _F.TYPE_UINT64, None, None),
            ("datatype", 4, opt, _F.TYPE_UINT32, None, None),
            ("is_historical", 5, opt, _F.TYPE_BOOL, None, None),
            ("is_transient", 6, opt, _F.TYPE_BOOL, None, None),
            ("is_null", 7, opt, _F.TYPE_BOOL, None, None),
            ("properties", 9, opt, _F.TYPE_MESSAGE, f"{p}.PropertySet", None),
            ("int_value", 10, opt, _F.TYPE_UINT32, None, 0),
            ("long_value", 11, opt, _F.TYPE_UINT64, None, 0),
            ("float_value", 12, opt, _F.TYPE_FLOAT, None, 0),
            ("double_value", 13, opt, _F.TYPE_DOUBLE, None, 0),
            ("boolean_value", 14, opt, _F.TYPE_BOOL, None, 0),
            ("string_value", 15, opt, _F.TYPE_STRING, None, 0),
            ("bytes_value", 16, opt, _F.TYPE_BYTES, None, 0),
        ],
        ["value"],
    )
    return f


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())
Payload: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{PACKAGE}.Payload"))
