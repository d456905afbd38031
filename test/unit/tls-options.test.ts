// Covers the client connection options built from config: NATS user, password (pass or passFile),
// inbox prefix and TLS (nats.tls.*), and the Cassandra driver's sslOptions (cassandra.tls.*), from
// env as an operator sets them. A TLS nats-server is exercised in test/integration/nats-tls.test.ts.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { baseSchema, loadProcessConfig } from "@machina/config";
import type { BaseConfig } from "@machina/config";
import { dataService } from "@machina/data";
import type { DataConfig } from "@machina/data";
import { cassandraSslOptions } from "@machina/data";
import { natsConnectOptions } from "@machina/runtime";
import { meshNames } from "@machina/subjects";

const dir = mkdtempSync(path.join(tmpdir(), "machina-tls-unit-"));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};
const CA = file("ca.pem", "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n");
const CERT = file("client.pem", "-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n");
const KEY = file("client.key", "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n");
const PASS = file("fetch.pass", "  p0123456789abcdef\n");
const configDir = mkdtempSync(path.join(tmpdir(), "machina-tls-cfg-"));

const base = (env: Record<string, string>) =>
  loadProcessConfig<BaseConfig>("fetch", baseSchema({ httpPort: 0 }) as never, {
    configDir,
    env,
  }).values;
const options = (env: Record<string, string>) => natsConnectOptions(base(env), "fetch", meshNames("machina"));

describe("NATS connection options", () => {
  it("connects without a user, on the service's own inbox prefix, without TLS, by default", () => {
    const o = options({});
    assert.equal(o.user, undefined);
    assert.equal(o.pass, undefined);
    assert.equal(o.tls, undefined);
    assert.equal(o.inboxPrefix, "_INBOX.machina.fetch");
    assert.deepEqual(o.servers, ["nats://127.0.0.1:4222"]);
  });

  it("takes the password from nats.pass or from nats.passFile (trimmed), never both", () => {
    assert.equal(
      options({ MACHINA_NATS_USER: "fetch", MACHINA_NATS_PASS: "p-secret-secret-1" }).pass,
      "p-secret-secret-1",
    );
    const o = options({ MACHINA_FETCH_NATS_USER: "fetch", MACHINA_FETCH_NATS_PASS_FILE: PASS });
    assert.deepEqual([o.user, o.pass], ["fetch", "p0123456789abcdef"]);
    assert.throws(
      () => options({ MACHINA_NATS_USER: "fetch", MACHINA_NATS_PASS: "x", MACHINA_NATS_PASS_FILE: PASS }),
      /nats\.pass and nats\.passFile are both set/,
    );
    assert.throws(
      () => options({ MACHINA_NATS_USER: "fetch", MACHINA_NATS_PASS_FILE: path.join(dir, "missing") }),
      (e: Error & { code?: string }) =>
        e.code === "BAD_REQUEST" && /^nats\.passFile: cannot read .*missing/.test(e.message),
    );
    assert.throws(() => options({ MACHINA_NATS_PASS: "p-secret-secret-1" }), /nats\.user: required with a password/);
  });

  it("maps nats.tls.* to the TLS options nats.js hands to tls.connect", () => {
    const o = options({
      MACHINA_NATS_TLS_CA: CA,
      MACHINA_NATS_TLS_CERT: CERT,
      MACHINA_NATS_TLS_KEY: KEY,
      MACHINA_NATS_TLS_SERVER_NAME: "nats.internal",
    });
    assert.deepEqual(o.tls, {
      ca: ["-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"],
      cert: "-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n",
      key: "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n",
      servername: "nats.internal",
      rejectUnauthorized: true,
    });
    assert.deepEqual(options({ MACHINA_NATS_TLS_VERIFY: "false" }).tls, { rejectUnauthorized: false });
    assert.deepEqual(options({ MACHINA_NATS_TLS_CA: CA }).tls, {
      ca: ["-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"],
      rejectUnauthorized: true,
    });
  });

  it("names the key of a TLS file it cannot read, and a certificate without its key", () => {
    assert.throws(
      () => options({ MACHINA_NATS_TLS_CA: path.join(dir, "nope.pem") }),
      (e: Error & { code?: string; details?: { field?: string } }) =>
        e.code === "BAD_REQUEST" &&
        e.details?.field === "nats.tls.ca" &&
        /^nats\.tls\.ca: cannot read /.test(e.message),
    );
    assert.throws(() => options({ MACHINA_NATS_TLS_CERT: CERT }), /: nats\.tls\.key: required with nats\.tls\.cert/);
  });
});

describe("Cassandra sslOptions", () => {
  const schema = { ...baseSchema({ httpPort: 0 }), ...dataService.schema } as never;
  const tls = (env: Record<string, string>) =>
    loadProcessConfig<DataConfig & BaseConfig>("data", schema, { configDir, env }).values.cassandra.tls;

  it("is plain CQL by default", () => {
    assert.equal(cassandraSslOptions(tls({})), undefined);
  });

  it("turns TLS on with verification when enabled alone (the driver's own default would not verify)", () => {
    assert.deepEqual(cassandraSslOptions(tls({ MACHINA_DATA_CASSANDRA_TLS_ENABLED: "true" })), {
      rejectUnauthorized: true,
    });
  });

  it("maps the CA, client certificate, server name and verify, and setting one turns TLS on", () => {
    assert.deepEqual(
      cassandraSslOptions(
        tls({
          MACHINA_DATA_CASSANDRA_TLS_CA: CA,
          MACHINA_DATA_CASSANDRA_TLS_CERT: CERT,
          MACHINA_DATA_CASSANDRA_TLS_KEY: KEY,
          MACHINA_DATA_CASSANDRA_TLS_SERVER_NAME: "scylla.internal",
        }),
      ),
      {
        ca: ["-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"],
        cert: "-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n",
        key: "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n",
        servername: "scylla.internal",
        rejectUnauthorized: true,
      },
    );
    assert.deepEqual(cassandraSslOptions(tls({ MACHINA_DATA_CASSANDRA_TLS_VERIFY: "false" })), {
      rejectUnauthorized: false,
    });
    assert.throws(
      () => cassandraSslOptions(tls({ MACHINA_DATA_CASSANDRA_TLS_KEY: KEY })),
      /cassandra\.tls\.cert: required with cassandra\.tls\.key/,
    );
  });
});
