// An OPC UA server nobody on AX Hub wrote (node-opcua), for the connector tests.
//
// usage: node opcua_server.js <port> <pki-folder> [secure]
// Address space under Objects/Plant:
//   Press 1 (object)   : "Door Open" (Boolean), "Zone1 °C" (Double), "온도" (Double), Counter (UInt32),
//                        "Sensor Fault" (Double, always NaN: a PLC's "no valid value")
//   Line1/Cell1/Robot/Arm (objects, depth 5 from Plant): Speed (Double), below a browse depth of 3
//   ns=1;s=Counter     : the same counter under a string NodeId, changing every 100 ms
//   Cell7 (object)     : writable Double setpoints ns=1;s=Cell7.<name> (feed_per_tooth_mm,
//                        spindle_speed_rpm, clamp_pressure_bar) for the setpoint write-back tests
// With "secure", only Basic256Sha256 SignAndEncrypt is offered and unknown client certificates
// are refused (they land in <pki>/rejected, as on a real plant server).
// Prints "READY <port>" once it listens.
"use strict";
const path = require("path");
const opcua = require("node-opcua");

async function main() {
  const port = parseInt(process.argv[2], 10);
  const pki = process.argv[3];
  const secure = process.argv[4] === "secure";
  const serverCertificateManager = new opcua.OPCUACertificateManager({
    rootFolder: path.join(pki, "server"),
    automaticallyAcceptUnknownCertificate: !secure,
  });
  await serverCertificateManager.initialize();
  const server = new opcua.OPCUAServer({
    port,
    resourcePath: "/axhub",
    serverCertificateManager,
    securityPolicies: secure ? [opcua.SecurityPolicy.Basic256Sha256] : [opcua.SecurityPolicy.None],
    securityModes: secure ? [opcua.MessageSecurityMode.SignAndEncrypt] : [opcua.MessageSecurityMode.None],
    allowAnonymous: true,
  });
  await server.initialize();
  const ns = server.engine.addressSpace.getOwnNamespace();
  const plant = ns.addObject({
    organizedBy: server.engine.addressSpace.rootFolder.objects,
    browseName: "Plant",
    nodeId: "s=Plant",
  });
  const press = ns.addObject({ componentOf: plant, browseName: "Press 1" });
  let counter = 0;
  const t0 = Date.now();
  const variable = (owner, name, dataType, get, nodeId) =>
    ns.addVariable({
      componentOf: owner,
      browseName: name,
      nodeId,
      dataType,
      minimumSamplingInterval: 50,
      value: { get: () => new opcua.Variant({ dataType: opcua.DataType[dataType], value: get() }) },
    });
  variable(press, "Door Open", "Boolean", () => counter % 2 === 1);
  variable(press, "Zone1 °C", "Double", () => 20 + counter / 10);
  variable(press, "온도", "Double", () => 30 + counter / 10);
  variable(press, "Counter", "UInt32", () => counter, "s=Counter");
  variable(press, "Sensor Fault", "Double", () => NaN);
  const line = ns.addObject({ componentOf: plant, browseName: "Line1" });
  const cell = ns.addObject({ componentOf: line, browseName: "Cell1" });
  const robot = ns.addObject({ componentOf: cell, browseName: "Robot" });
  const arm = ns.addObject({ componentOf: robot, browseName: "Arm" });
  variable(arm, "Speed", "Double", () => (Date.now() - t0) / 1000);
  // Writable setpoints of a machining cell (process optimisation write-back):
  // ns=1;s=Cell7.<name>, Double, read/write; the value written is the value read.
  const cell7 = ns.addObject({ componentOf: plant, browseName: "Cell7" });
  const setpoints = { feed_per_tooth_mm: 0.14, spindle_speed_rpm: 6800, clamp_pressure_bar: 3.4 };
  for (const name of Object.keys(setpoints)) {
    ns.addVariable({
      componentOf: cell7,
      browseName: name,
      nodeId: `s=Cell7.${name}`,
      dataType: "Double",
      accessLevel: "CurrentRead | CurrentWrite",
      userAccessLevel: "CurrentRead | CurrentWrite",
      value: {
        get: () => new opcua.Variant({ dataType: opcua.DataType.Double, value: setpoints[name] }),
        set: (variant) => {
          setpoints[name] = variant.value;
          return opcua.StatusCodes.Good;
        },
      },
    });
  }
  setInterval(() => {
    counter += 1;
  }, 100);
  await server.start();
  process.stdout.write(`READY ${port}\n`);
  const stop = async () => {
    await server.shutdown(0);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
