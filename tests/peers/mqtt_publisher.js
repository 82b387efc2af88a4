// An MQTT 5 publisher nobody on AX Hub wrote (npm mqtt), with Sparkplug B payloads encoded by
// an independent encoder (npm sparkplug-payload), for the connector tests.
//
// usage: node mqtt_publisher.js <broker port> <json topic prefix> <sparkplug group>
// Publishes (QoS 1) the JSON gateway shapes of cases.json, then a Sparkplug B edge node's life:
// NBIRTH, DBIRTH, DDATA and NDATA by alias, an NDATA after a sequence gap, DDEATH and NDEATH.
// Listens for the host's rebirth request (NCMD) and prints "REBIRTH <metric>" when it comes;
// prints "READY" once subscribed, "PUBLISHED" when everything is sent, and exits 0 once both
// are done and the rebirth request came (or 1 after 20 s).
"use strict";
const fs = require("fs");
const path = require("path");
const mqtt = require("mqtt");
const sparkplug = require("sparkplug-payload").get("spBv1.0");

const [port, prefix, group] = process.argv.slice(2);
const T = 1700000000000;
const node = "edge-1";
const device = "Press 1";
const cases = JSON.parse(fs.readFileSync(path.join(__dirname, "cases.json"), "utf8"));

const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
  protocolVersion: 5,
  clientId: `peer-${process.pid}`,
  clean: true,
});
const publish = (topic, payload) =>
  new Promise((resolve, reject) =>
    client.publish(topic, payload, { qos: 1 }, (err) => (err ? reject(err) : resolve())),
  );
const spb = (type, dev, payload) => {
  const topic = `spBv1.0/${group}/${type}/${node}${dev ? "/" + dev : ""}`;
  return publish(topic, Buffer.from(sparkplug.encodePayload(payload)));
};

let published = false;
let rebirth = false;
const finish = () => {
  if (published && rebirth) client.end(false, {}, () => process.exit(0));
};
client.on("message", (topic, payload) => {
  const decoded = sparkplug.decodePayload(payload);
  for (const m of decoded.metrics) {
    process.stdout.write(`REBIRTH ${m.name}=${m.value}\n`);
  }
  rebirth = true;
  finish();
});

client.on("connect", async () => {
  try {
    await new Promise((resolve, reject) =>
      client.subscribe(`spBv1.0/${group}/NCMD/${node}`, { qos: 0 }, (err) => (err ? reject(err) : resolve())),
    );
    process.stdout.write("READY\n");
    for (const c of cases) {
      const body = typeof c.payload === "string" ? c.payload : JSON.stringify(c.payload);
      await publish(`${prefix}/${c.topic}`, body);
    }
    await spb("NBIRTH", null, {
      timestamp: T,
      seq: 0,
      metrics: [
        { name: "bdSeq", type: "Int64", value: 0 },
        { name: "Node Control/Rebirth", type: "Boolean", value: false },
        { name: "Motor/Speed", alias: 1, type: "Double", value: 1450.5 },
        { name: "count", alias: 2, type: "Int32", value: 7 },
        { name: "label", alias: 3, type: "String", value: "line A" },
      ],
    });
    await spb("DBIRTH", device, {
      timestamp: T,
      seq: 1,
      metrics: [
        { name: "온도", alias: 10, type: "Float", value: 20.5 },
        { name: "Door Open", alias: 11, type: "Boolean", value: false },
        { name: "big", alias: 12, type: "Int64", value: 1 },
        { name: "ok", alias: 13, type: "Double", value: 1, properties: { Quality: { type: "Int32", value: 192 } } },
      ],
    });
    await spb("DDATA", device, {
      timestamp: T + 1000,
      seq: 2,
      metrics: [
        { alias: 10, type: "Float", value: 21.5 },
        { alias: 11, type: "Boolean", value: true },
        { alias: 12, type: "Int64", value: -123456789012, timestamp: T + 1500 },
        { alias: 13, type: "Double", value: 2, properties: { Quality: { type: "Int32", value: 64 } } },
      ],
    });
    await spb("NDATA", null, {
      timestamp: T + 2000,
      seq: 3,
      metrics: [
        { alias: 1, type: "Double", value: 1500.25 },
        { alias: 2, type: "Int32", value: -5 },
      ],
    });
    // seq 4 is lost: the host must ask for a rebirth, and still store what it can read.
    await spb("NDATA", null, { timestamp: T + 3000, seq: 5, metrics: [{ alias: 1, type: "Double", value: 1600 }] });
    await spb("DDEATH", device, { timestamp: T + 4000, seq: 6, metrics: [] });
    await spb("NDEATH", null, { timestamp: T, metrics: [{ name: "bdSeq", type: "Int64", value: 0 }] });
    process.stdout.write("PUBLISHED\n");
    published = true;
    finish();
  } catch (err) {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
  }
});

setTimeout(() => {
  process.stderr.write("no rebirth request within 20 s\n");
  process.exit(1);
}, 20000);
