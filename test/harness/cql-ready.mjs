// One CQL readiness probe: connect, STARTUP, run
// `SELECT release_version FROM system.local`, print the version, exit 0.
// Exit 1 (with the reason on stderr) when the node does not serve CQL yet.
//
// Speaks native protocol v4 directly instead of using cassandra-driver so that
// cassandra.sh works before `pnpm install` and each probe costs one round trip
// (the driver would also discover peers and fetch schema metadata).
//
// Usage: node cql-ready.mjs [host] [port] [timeoutMs]
import net from "node:net";

const host = process.argv[2] ?? "127.0.0.1";
const port = Number(process.argv[3] ?? 9042);
const timeoutMs = Number(process.argv[4] ?? 3000);

const OP = { ERROR: 0x00, STARTUP: 0x01, READY: 0x02, AUTHENTICATE: 0x03, QUERY: 0x07, RESULT: 0x08 };
const PROTOCOL_V4 = 0x04;
const CONSISTENCY_ONE = 0x0001;
const RESULT_ROWS = 0x0002;

function frame(opcode, stream, body) {
  const header = Buffer.alloc(9);
  header.writeUInt8(PROTOCOL_V4, 0);
  header.writeUInt8(0, 1);
  header.writeInt16BE(stream, 2);
  header.writeUInt8(opcode, 4);
  header.writeInt32BE(body.length, 5);
  return Buffer.concat([header, body]);
}

function str(s) {
  const b = Buffer.from(s, "utf8");
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

function longStr(s) {
  const b = Buffer.from(s, "utf8");
  const len = Buffer.alloc(4);
  len.writeInt32BE(b.length);
  return Buffer.concat([len, b]);
}

function startupBody() {
  const n = Buffer.alloc(2);
  n.writeUInt16BE(1);
  return Buffer.concat([n, str("CQL_VERSION"), str("3.0.0")]);
}

function queryBody(cql) {
  const tail = Buffer.alloc(3);
  tail.writeUInt16BE(CONSISTENCY_ONE, 0);
  tail.writeUInt8(0, 2); // no values, default paging
  return Buffer.concat([longStr(cql), tail]);
}

class Reader {
  constructor(buf) {
    this.buf = buf;
    this.pos = 0;
  }
  int() {
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  short() {
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  string() {
    const len = this.short();
    const v = this.buf.toString("utf8", this.pos, this.pos + len);
    this.pos += len;
    return v;
  }
  bytes() {
    const len = this.int();
    if (len < 0) return null;
    const v = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return v;
  }
  // Skips an [option] type spec; only the shapes system.local can return for
  // a text column are needed, but collections are handled for robustness.
  option() {
    const id = this.short();
    if (id === 0x0000) this.string();
    else if (id === 0x0020 || id === 0x0022) this.option();
    else if (id === 0x0021) {
      this.option();
      this.option();
    }
  }
}

function errorMessage(body) {
  const r = new Reader(body);
  const code = r.int();
  return `CQL error 0x${code.toString(16)}: ${r.string()}`;
}

// Returns the first column of the first row as text.
function firstCell(body) {
  const r = new Reader(body);
  const kind = r.int();
  if (kind !== RESULT_ROWS) throw new Error(`unexpected result kind ${kind}`);
  const flags = r.int();
  const columns = r.int();
  if (flags & 0x0002) r.bytes(); // paging state
  if (!(flags & 0x0004)) {
    const globalSpec = flags & 0x0001;
    if (globalSpec) {
      r.string();
      r.string();
    }
    for (let i = 0; i < columns; i++) {
      if (!globalSpec) {
        r.string();
        r.string();
      }
      r.string();
      r.option();
    }
  }
  const rows = r.int();
  if (rows < 1) throw new Error("system.local returned no rows");
  const cell = r.bytes();
  return cell === null ? "" : cell.toString("utf8");
}

function probe() {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let pending = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no CQL answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = (err, value) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    socket.on("error", (err) => finish(err));
    socket.on("close", () => finish(new Error("connection closed before an answer")));
    socket.on("connect", () => socket.write(frame(OP.STARTUP, 0, startupBody())));
    socket.on("data", (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 9) {
        const length = pending.readInt32BE(5);
        if (pending.length < 9 + length) return;
        const opcode = pending.readUInt8(4);
        const body = pending.subarray(9, 9 + length);
        pending = pending.subarray(9 + length);
        try {
          if (opcode === OP.ERROR) return finish(new Error(errorMessage(body)));
          if (opcode === OP.READY) {
            socket.write(frame(OP.QUERY, 1, queryBody("SELECT release_version FROM system.local")));
          } else if (opcode === OP.AUTHENTICATE) {
            // Serving CQL, just with auth on; good enough to call it ready.
            return finish(null, "ready (authentication required)");
          } else if (opcode === OP.RESULT) {
            return finish(null, firstCell(body));
          } else {
            return finish(new Error(`unexpected opcode 0x${opcode.toString(16)}`));
          }
        } catch (err) {
          return finish(err);
        }
      }
    });
  });
}

try {
  console.log(await probe());
} catch (err) {
  console.error(`cql-ready: ${host}:${port}: ${err.message}`);
  process.exit(1);
}
