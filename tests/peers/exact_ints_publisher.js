// An MQTT 5 publisher nobody on AX Hub wrote (npm mqtt) sending integers a float64 cannot hold,
// as JSON text and as Sparkplug B Int64/UInt64 metrics encoded by npm sparkplug-payload.
//
// usage: node exact_ints_publisher.js <broker port> <json topic prefix> <sparkplug group>
// JSON (QoS 1, on <prefix>/<asset>/<signal>): values 2^53+1, 2^63-1, -2^63, 2^64-1, written
// out as JSON integer literals (the publisher builds the text: JS numbers would round them).
// Sparkplug B: NBIRTH of edge node "edge-9" with Int64 and UInt64 metrics holding the same
// values (as Long objects: exact 64-bit), then an NDATA by alias with the next values.
// Prints "READY" once connected, "PUBLISHED" and exits 0 when the broker has acknowledged everything.
"use strict";
const mqtt = require("mqtt");
const Long = require("long");
const sparkplug = require("sparkplug-payload").get("spBv1.0");

const [port, prefix, group] = process.argv.slice(2);
const T = 1700000000000;
const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
  protocolVersion: 5,
  clientId: `peer-int-${process.pid}`,
  clean: true,
});
const publish = (topic, payload) =>
  new Promise((resolve, reject) =>
    client.publish(topic, payload, { qos: 1 }, (err) => (err ? reject(err) : resolve())),
  );
const spb = (type, payload) =>
  publish(`spBv1.0/${group}/${type}/edge-9`, Buffer.from(sparkplug.encodePayload(payload)));

const json = [
  ["p53", "9007199254740993"],
  ["i64max", "9223372036854775807"],
  ["i64min", "-9223372036854775808"],
  ["u64max", "18446744073709551615"],
];
const signed = (s) => Long.fromString(s, false);
const unsigned = (s) => Long.fromString(s, true);

client.on("connect", async () => {
  try {
    process.stdout.write("READY\n");
    for (const [signal, text] of json) {
      await publish(`${prefix}/meter-1/${signal}`, `{"ts": ${T}, "value": ${text}}`);
      await publish(`${prefix}/meter-1/${signal}`, `[{"ts": ${T + 1}, "value": ${text}}]`);
    }
    await spb("NBIRTH", {
      timestamp: T,
      seq: 0,
      metrics: [
        { name: "bdSeq", type: "Int64", value: 0 },
        { name: "p53", alias: 1, type: "Int64", value: signed("9007199254740993") },
        { name: "i64max", alias: 2, type: "Int64", value: signed("9223372036854775807") },
        { name: "i64min", alias: 3, type: "Int64", value: signed("-9223372036854775808") },
        { name: "u53", alias: 4, type: "UInt64", value: unsigned("9007199254740993") },
        { name: "u64max", alias: 5, type: "UInt64", value: unsigned("18446744073709551615") },
      ],
    });
    await spb("NDATA", {
      timestamp: T + 1000,
      seq: 1,
      metrics: [
        { alias: 1, type: "Int64", value: signed("-9007199254740993") },
        { alias: 4, type: "UInt64", value: unsigned("9223372036854775807") },
      ],
    });
    process.stdout.write("PUBLISHED\n");
    client.end(false, {}, () => process.exit(0));
  } catch (err) {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
  }
});
setTimeout(() => {
  process.stderr.write("not done within 20 s\n");
  process.exit(1);
}, 20000);
