// An OPC UA server nobody on AX Hub wrote (node-opcua) whose tags all change at a steady rate,
// for `axhub bench opcua --server node-opcua` (issue 11: 3,000 tags x 10 Hz).
//
// usage: node opcua_bench_server.js <port> <tags> <hz> <seconds> <ready file> <pki folder> [<ticks file>]
// Tags are Double variables ns=1;s=line-XX.tagYYY (100 per line object), as the asyncua bench
// server names them. Protocol (files, as the bench's own server): writes <ready file> {"ns": 1}
// once listening, waits for <ready file>.go, changes every tag <hz> times a second for <seconds>
// (value (tick + 1) * 1000 + k: never the initial 0, which would be no change; source timestamp
// = now), writes <ready file>.done with {"writes", "seconds", "late_ticks", "ticks"}, and keeps
// serving (the last notifications still go out to a client that is behind) until it is
// terminated (SIGTERM: it stops changing values and publishes what it holds for 1 s first),
// or 60 s later. With <ticks file> (`axhub bench soak`), each tick's source timestamp
// (ms) is appended to it as one line once all its tags have changed.
"use strict";
const fs = require("fs");
const path = require("path");
const opcua = require("node-opcua");

async function main() {
  const [port, nTags, hz, seconds] = process.argv.slice(2, 6).map(Number);
  const ready = process.argv[6];
  const pki = process.argv[7];
  const ticksFile = process.argv[8];
  const serverCertificateManager = new opcua.OPCUACertificateManager({
    rootFolder: path.join(pki, "server"),
    automaticallyAcceptUnknownCertificate: true,
  });
  await serverCertificateManager.initialize();
  const server = new opcua.OPCUAServer({
    port,
    resourcePath: "/axhub/",
    serverCertificateManager,
    // Also signed (Basic256Sha256, Sign), certificates of unknown clients accepted: a server
    // hands an anonymous subscription over to a new session only on a signed channel.
    securityPolicies: [opcua.SecurityPolicy.None, opcua.SecurityPolicy.Basic256Sha256],
    securityModes: [opcua.MessageSecurityMode.None, opcua.MessageSecurityMode.Sign],
    allowAnonymous: true,
    // 3,000 monitored items in one subscription, many notifications per publish.
    // minSupportedSampleRate 0: every change is sent. node-opcua's default (50 ms) folds two
    // changes of a tag that come less than 50 ms apart, which happens whenever this server's
    // own tick runs late on a loaded machine: changes lost before any client sees them.
    serverCapabilities: { maxMonitoredItemsPerCall: 100000, minSupportedSampleRate: 0 },
  });
  await server.initialize();
  const ns = server.engine.addressSpace.getOwnNamespace();
  const objects = server.engine.addressSpace.rootFolder.objects;
  const tags = [];
  let line = null;
  for (let i = 0; i < nTags; i++) {
    const lineName = `line-${String(Math.floor(i / 100)).padStart(2, "0")}`;
    if (i % 100 === 0) line = ns.addObject({ organizedBy: objects, browseName: lineName });
    const tag = `tag${String(i % 100).padStart(3, "0")}`;
    tags.push(
      ns.addVariable({
        componentOf: line,
        browseName: tag,
        nodeId: `s=${lineName}.${tag}`,
        dataType: "Double",
        minimumSamplingInterval: 0,
        value: new opcua.Variant({ dataType: opcua.DataType.Double, value: 0 }),
      }),
    );
  }
  // SIGTERM is a planned restart: stop changing values, let the subscriptions publish what
  // they hold (a few publishing intervals), then shut down. Changes a server never published
  // (SIGKILL, a crash) no client can store.
  let terminated;
  const terminating = new Promise((resolve) => {
    terminated = resolve;
  });
  let stopping = false;
  process.on("SIGTERM", () => {
    stopping = true;
    terminated();
  });
  await server.start();
  fs.writeFileSync(ready, JSON.stringify({ ns: ns.index }));
  while (!fs.existsSync(`${ready}.go`)) await new Promise((r) => setTimeout(r, 50));
  const started = performance.now();
  let tick = 0;
  let writes = 0;
  let late = 0;
  while (!stopping && performance.now() - started < seconds * 1000) {
    const now = new Date();
    for (let k = 0; k < tags.length; k++) {
      tags[k].setValueFromSource(
        { dataType: opcua.DataType.Double, value: (tick + 1) * 1000 + k },
        opcua.StatusCodes.Good,
        now,
      );
    }
    writes += tags.length;
    tick += 1;
    if (ticksFile) fs.appendFileSync(ticksFile, `${now.getTime()}\n`);
    const delay = started + (tick * 1000) / hz - performance.now();
    if (delay < 0) late += 1;
    await Promise.race([new Promise((r) => setTimeout(r, Math.max(0, delay))), terminating]);
  }
  const elapsed = (performance.now() - started) / 1000;
  fs.writeFileSync(`${ready}.done`, JSON.stringify({ writes, seconds: elapsed, late_ticks: late, ticks: tick }));
  await Promise.race([new Promise((r) => setTimeout(r, 60000)), terminating]);
  await new Promise((r) => setTimeout(r, 1000));
  await server.shutdown(0);
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
