import { readFileSync } from "node:fs";
import { connect } from "@nats-io/transport-node";
import type { ConnectionOptions, NatsConnection, TlsOptions } from "@nats-io/nats-core";
import type { BaseConfig } from "@machina/config";
import type { MeshNames, NatsUser } from "@machina/subjects";
import { MachinaError, useFastCommandEncoding, useFastHeaderDecoding } from "@machina/wire";
import { tlsOptions, tlsWanted } from "./tls-files";
import { coalesceWrites } from "./write-coalescing";
import type { ReadText } from "./tls-files";

const readText: ReadText = (file) => readFileSync(file, "utf8");

/** The password of `nats.pass` or `nats.passFile` ("" when neither is set). */
export function natsPassword(nats: BaseConfig["nats"], read: ReadText = readText): string {
  if (nats.pass !== "" && nats.passFile !== "")
    throw new MachinaError("BAD_REQUEST", "nats.pass and nats.passFile are both set; set one of them", {
      retryable: false,
      details: { field: "nats.passFile" },
    });
  if (nats.passFile === "") return nats.pass;
  try {
    return read(nats.passFile).trim();
  } catch (err) {
    throw new MachinaError("BAD_REQUEST", `nats.passFile: cannot read ${nats.passFile}: ${(err as Error).message}`, {
      retryable: false,
      cause: err,
      details: { field: "nats.passFile" },
    });
  }
}

/**
 * Options of a NATS connection from a base config: the servers, user and password, TLS when a
 * `nats.tls` key is set, and for a service its own inbox prefix (`_INBOX.<prefix>.<service>`),
 * the only inboxes its NATS user may read. `who`: the service, or `admin` (the default inboxes).
 */
export function natsConnectOptions(
  config: BaseConfig,
  who: NatsUser,
  names: MeshNames,
  read: ReadText = readText,
): ConnectionOptions {
  const nats = config.nats;
  const pass = natsPassword(nats, read);
  if (pass !== "" && nats.user === "")
    throw new MachinaError("BAD_REQUEST", "nats.user: required with a password (nats.pass or nats.passFile)", {
      retryable: false,
      details: { field: "nats.user" },
    });
  const opts: ConnectionOptions = {
    servers: nats.url.split(",").map((u) => u.trim()),
    name: `${who}:${config.mesh.node}`,
    maxReconnectAttempts: -1,
    noAsyncTraces: true,
  };
  if (who !== "admin") opts.inboxPrefix = names.inbox(who);
  if (nats.user !== "") {
    opts.user = nats.user;
    opts.pass = pass;
  }
  // nats.js hands these to tls.connect as they are (server name and verification included).
  if (tlsWanted(nats.tls)) opts.tls = tlsOptions(nats.tls, "nats.tls", read) as TlsOptions;
  return opts;
}

/**
 * Connects with {@link natsConnectOptions}, socket writes coalesced per event-loop turn
 * ({@link coalesceWrites}) and received headers decoded by the fast path (useFastHeaderDecoding
 * in @machina/wire); a refused user or password, or a TLS failure, is an
 * UNAVAILABLE error that names the URL, the user and the keys to check (never the password).
 */
export async function connectNats(config: BaseConfig, who: NatsUser, names: MeshNames): Promise<NatsConnection> {
  const opts = natsConnectOptions(config, who, names);
  try {
    const nc = await connect(opts);
    coalesceWrites(nc);
    useFastHeaderDecoding();
    useFastCommandEncoding();
    return nc;
  } catch (err) {
    throw connectError(err, config);
  }
}

function connectError(err: unknown, config: BaseConfig): MachinaError {
  const message = (err as Error).message ?? String(err);
  const where = `NATS at ${config.nats.url}`;
  const user = config.nats.user;
  let text: string;
  if ((err as Error).name === "AuthorizationError" || /authoriz|authentic/i.test(message))
    text =
      user === ""
        ? `${where} refused a connection without a user (${message}): the server requires one; set nats.user and nats.pass or nats.passFile (MACHINA_NATS_USER, MACHINA_NATS_PASS, MACHINA_NATS_PASS_FILE)`
        : `${where} refused user "${user}" (${message}): check nats.user and nats.pass or nats.passFile against the server's users (tools/nats-admin.ts auth-config)`;
  else if (/tls|certificate|self.signed|unable to verify|handshake|altnames/i.test(message))
    text = `${where}: TLS failed (${message}); check nats.tls.ca (the CA the server's certificate chains to) and nats.tls.serverName`;
  else text = `${where}: ${message}; is nats.url right and the server up?`;
  return new MachinaError("UNAVAILABLE", text, {
    retryable: false,
    cause: err,
    details: { dependency: "nats", url: config.nats.url, user },
  });
}
