// TLS to NATS with a CA the test makes itself (openssl): a nats-server of the test's own requires
// TLS with a certificate that CA signed; a service given the CA (nats.tls.ca) starts and serves,
// one without it is refused at start naming what to check, a wrong server name is refused, and a
// server that verifies clients takes a service's client certificate (nats.tls.cert/key) only.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { connect } from "@nats-io/transport-node";
import { baseSchema, loadProcessConfig } from "@machina/config";
import type { BaseConfig } from "@machina/config";
import { connectNats } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { emptyConfigDir, uniquePrefix } from "../support/nats-env";
import { startOwnNats, type OwnNats } from "../support/own-nats";
import { startServiceProc, type ServiceProc } from "../support/service-procs";

const dir = mkdtempSync(path.join(tmpdir(), "machina-tls-"));
const at = (f: string) => path.join(dir, f);

function openssl(args: string[]): void {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  assert.equal(r.status, 0, `openssl ${args.join(" ")}:\n${r.stderr}`);
}

/** A certificate for `cn` with `san`, signed by the test CA. */
function issue(name: string, cn: string, ext: string): void {
  openssl(
    ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`].concat([
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${cn}`,
    ]),
  );
  writeFileSync(at(`${name}.ext`), ext);
  openssl(
    ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"].concat([
      "-out",
      `${name}.pem`,
      "-days",
      "1",
      "-extfile",
      `${name}.ext`,
    ]),
  );
}

const prefix = uniquePrefix("tls");
const names = meshNames(prefix);
/** A connection as compute makes it, from env settings. */
const connectWith = (env: Record<string, string>) =>
  connectNats(
    loadProcessConfig<BaseConfig>("compute", baseSchema({ httpPort: 0 }) as never, {
      configDir: emptyConfigDir(),
      env: { MACHINA_MESH_PREFIX: prefix, ...env },
    }).values,
    "compute",
    names,
  );

describe("TLS to NATS with the test's own CA", { timeout: 120_000 }, () => {
  let tls: OwnNats;
  let mtls: OwnNats;
  const procs: ServiceProc[] = [];

  before(async () => {
    openssl(
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=machina-test-ca",
      ]),
    );
    issue("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    issue("client", "compute", "extendedKeyUsage=clientAuth\n");
    const serverTls = (verify: boolean) =>
      `tls {\n  cert_file: ${JSON.stringify(at("server.pem"))}\n  key_file: ${JSON.stringify(at("server.key"))}\n` +
      (verify ? `  ca_file: ${JSON.stringify(at("ca.pem"))}\n  verify: true\n` : "") +
      "}\n";
    tls = await startOwnNats({ extra: serverTls(false) });
    mtls = await startOwnNats({ extra: serverTls(true) });
  });

  after(async () => {
    await Promise.allSettled(procs.map((p) => p.stop()));
    await tls?.stop();
    await mtls?.stop();
  });

  const startCompute = (url: string, env: Record<string, string>) =>
    startServiceProc("compute", {
      configDir: emptyConfigDir(),
      prefix,
      env: { MACHINA_NATS_URL: url, ...env },
      readyTimeoutMs: 60_000,
    });

  it("a service given the CA starts over TLS and answers", async () => {
    const p = await startCompute(tls.url, { MACHINA_NATS_TLS_CA: at("ca.pem") });
    procs.push(p);
    const nc = await connect({ servers: tls.url, tls: { caFile: at("ca.pem") } });
    try {
      const m = await nc.request(names.computeCache("stats"), new TextEncoder().encode("{}"), { timeout: 10_000 });
      assert.equal(m.headers?.get("Nats-Service-Error-Code") ?? "", "", "compute answered over TLS");
    } finally {
      await nc.close();
    }
  });

  it("a service without the CA is refused at start: the server's certificate is not trusted", async () => {
    await assert.rejects(startCompute(tls.url, {}), (err: Error) => {
      assert.match(err.message, /compute failed to start: NATS at nats:\/\/127\.0\.0\.1:\d+: TLS failed/);
      assert.match(err.message, /self.signed|unable to (verify|get local issuer)/i);
      assert.match(err.message, /check nats\.tls\.ca/);
      return true;
    });
  });

  it("checks the server's name: one the certificate does not carry is refused, verify=false skips the check", async () => {
    await assert.rejects(
      connectWith({
        MACHINA_NATS_URL: tls.url,
        MACHINA_NATS_TLS_CA: at("ca.pem"),
        MACHINA_NATS_TLS_SERVER_NAME: "nats.elsewhere",
      }),
      /TLS failed \(Hostname\/IP does not match certificate's altnames/,
    );
    const nc = await connectWith({ MACHINA_NATS_URL: tls.url, MACHINA_NATS_TLS_VERIFY: "false" });
    await nc.close();
  });

  it("a server that verifies clients takes the service's client certificate, and refuses it without one", async () => {
    const nc = await connectWith({
      MACHINA_NATS_URL: mtls.url,
      MACHINA_NATS_TLS_CA: at("ca.pem"),
      MACHINA_NATS_TLS_CERT: at("client.pem"),
      MACHINA_NATS_TLS_KEY: at("client.key"),
    });
    await nc.flush();
    await nc.close();
    // Without a client certificate the server ends the handshake (the client sees the socket close
    // or time out; the server's log says why).
    await assert.rejects(
      connect({ servers: mtls.url, tls: { caFile: at("ca.pem") }, timeout: 3_000, maxReconnectAttempts: 0 }),
    );
    assert.match(mtls.log(), /TLS handshake error: .*(didn't provide a certificate|certificate required)/);
  });
});
