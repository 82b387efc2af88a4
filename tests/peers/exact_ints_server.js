// Servers nobody on AX Hub wrote holding 64-bit integers that a float64 cannot hold, for the
// exact-integer tests (issue 11): an OPC UA server (node-opcua) and a Modbus TCP server (npm
// modbus-serial), both in this one process.
//
// usage: node exact_ints_server.js <opcua port> <modbus port> <pki folder>
// OPC UA, under Objects/Counters, string NodeIds in namespace 1:
//   I53 Int64 2^53+1, IMax Int64 2^63-1, IMin Int64 -2^63, U53 UInt64 2^53+1, UMax UInt64 2^64-1
// Modbus holding registers, 4 per value, high word first (big word order):
//   0 int64 2^53+1, 4 int64 2^63-1, 8 int64 -2^63, 12 uint64 2^53+1, 16 uint64 2^64-1,
//   20 int64 -(2^53+1) with the words in reverse order (little word order).
// Prints "READY <opcua port> <modbus port>" once both listen.
"use strict";
const path = require("path");
const opcua = require("node-opcua");
const ModbusRTU = require("modbus-serial");

const [opcuaPort, modbusPort] = process.argv.slice(2, 4).map((p) => parseInt(p, 10));
const pki = process.argv[4];
const P53 = (1n << 53n) + 1n;
const I64_MAX = (1n << 63n) - 1n;
const I64_MIN = -(1n << 63n);
const U64_MAX = (1n << 64n) - 1n;
const M64 = (1n << 64n) - 1n;

// [high, low] 32-bit halves of a 64-bit two's complement value (node-opcua's Int64 form).
const halves = (v) => {
  const a = BigInt.asUintN(64, v) & M64;
  return [Number(a >> 32n), Number(a & 0xffffffffn)];
};
// Four 16-bit registers, high word first.
const words = (v) => {
  const a = BigInt.asUintN(64, v);
  return [48n, 32n, 16n, 0n].map((s) => Number((a >> s) & 0xffffn));
};

const registers = new Array(24).fill(0);
[P53, I64_MAX, I64_MIN, P53, U64_MAX].forEach((v, i) => registers.splice(i * 4, 4, ...words(v)));
registers.splice(20, 4, ...words(-P53).reverse());

async function main() {
  const serverCertificateManager = new opcua.OPCUACertificateManager({
    rootFolder: path.join(pki, "server"),
    automaticallyAcceptUnknownCertificate: true,
  });
  await serverCertificateManager.initialize();
  const server = new opcua.OPCUAServer({
    port: opcuaPort,
    resourcePath: "/axhub",
    serverCertificateManager,
    securityPolicies: [opcua.SecurityPolicy.None],
    securityModes: [opcua.MessageSecurityMode.None],
    allowAnonymous: true,
  });
  await server.initialize();
  const ns = server.engine.addressSpace.getOwnNamespace();
  const counters = ns.addObject({
    organizedBy: server.engine.addressSpace.rootFolder.objects,
    browseName: "Counters",
    nodeId: "s=Counters",
  });
  const variables = [
    ["I53", "Int64", P53],
    ["IMax", "Int64", I64_MAX],
    ["IMin", "Int64", I64_MIN],
    ["U53", "UInt64", P53],
    ["UMax", "UInt64", U64_MAX],
  ];
  for (const [name, dataType, value] of variables) {
    ns.addVariable({
      componentOf: counters,
      browseName: name,
      nodeId: `s=${name}`,
      dataType,
      // A scalar [high, low] pair: node-opcua's exact form of a 64-bit integer.
      value: new opcua.Variant({
        dataType: opcua.DataType[dataType],
        arrayType: opcua.VariantArrayType.Scalar,
        value: halves(value),
      }),
    });
  }
  await server.start();

  const vector = {
    getHoldingRegister: (addr) => {
      if (addr >= registers.length) throw { modbusErrorCode: 0x02, msg: "Illegal data address" };
      return registers[addr];
    },
    getInputRegister: () => 0,
    getCoil: () => false,
    setRegister() {},
    setCoil() {},
  };
  const modbus = new ModbusRTU.ServerTCP(vector, { host: "127.0.0.1", port: modbusPort, unitID: 1 });
  modbus.on("socketError", (err) => process.stderr.write(`socket error: ${err}\n`));
  await new Promise((resolve) => modbus.on("initialized", resolve));
  process.stdout.write(`READY ${opcuaPort} ${modbusPort}\n`);
  const stop = async () => {
    await server.shutdown(0);
    modbus.close(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
