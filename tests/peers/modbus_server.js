// A Modbus TCP server nobody on AX Hub wrote (npm modbus-serial), for the connector tests.
//
// usage: node modbus_server.js <port>
// Holding registers 0..99 hold 100 + address, except 40..49, which this PLC does not have:
// any request touching them gets Modbus exception 2 (illegal data address), as a real PLC
// answers for an address outside its memory map. Input registers hold 1000 + address.
// Every request is counted per connection; "CONNECTIONS <n>" is printed for each new one.
// Prints "READY <port>" once it listens.
"use strict";
const ModbusRTU = require("modbus-serial");

const port = parseInt(process.argv[2], 10);
const missing = (addr) => addr >= 40 && addr < 50;
let connections = 0;

const vector = {
  getHoldingRegister(addr) {
    if (missing(addr)) {
      throw { modbusErrorCode: 0x02, msg: "Illegal data address" };
    }
    return 100 + addr;
  },
  getInputRegister(addr) {
    return 1000 + addr;
  },
  getCoil() {
    return false;
  },
  setRegister() {},
  setCoil() {},
};

const server = new ModbusRTU.ServerTCP(vector, { host: "127.0.0.1", port, unitID: 1, debug: false });
server.on("initialized", () => process.stdout.write(`READY ${port}\n`));
server.on("socketError", (err) => process.stderr.write(`socket error: ${err}\n`));
server.on("error", (err) => process.stderr.write(`error: ${err}\n`));
// modbus-serial's ServerTCP keeps a net.Server as _server: count accepted connections.
server._server.on("connection", () => {
  connections += 1;
  process.stdout.write(`CONNECTIONS ${connections}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
