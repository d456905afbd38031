import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import type { TlsSettings } from "@machina/config";
import { MachinaError } from "@machina/wire";

/** Reads a file's text; `readFileSync` unless a test gives another. */
export type ReadText = (file: string) => string;

const readText: ReadText = (file) => readFileSync(file, "utf8");

/** True when any TLS key differs from its default: the connection must then use TLS. */
export function tlsWanted(s: TlsSettings): boolean {
  return s.ca !== "" || s.cert !== "" || s.key !== "" || s.serverName !== "" || !s.verify;
}

/**
 * Node TLS client options from TLS settings: the PEM files' contents (read now, so a missing
 * file stops the start naming its key, e.g. `nats.tls.ca`), the server name to verify and send
 * as SNI, and whether to verify at all. `at` is the settings' key path, for messages.
 */
export function tlsOptions(s: TlsSettings, at: string, read: ReadText = readText): ConnectionOptions {
  if ((s.cert === "") !== (s.key === "")) {
    const [given, missing] = s.cert === "" ? ["key", "cert"] : ["cert", "key"];
    throw new MachinaError(
      "BAD_REQUEST",
      `${at}.${missing}: required with ${at}.${given} (a client certificate and its key)`,
      {
        retryable: false,
        details: { field: `${at}.${missing}` },
      },
    );
  }
  const file = (key: "ca" | "cert" | "key"): string | undefined => {
    const path = s[key];
    if (path === "") return undefined;
    try {
      return read(path);
    } catch (err) {
      throw new MachinaError("BAD_REQUEST", `${at}.${key}: cannot read ${path}: ${(err as Error).message}`, {
        retryable: false,
        cause: err,
        details: { field: `${at}.${key}` },
      });
    }
  };
  const out: ConnectionOptions = { rejectUnauthorized: s.verify };
  const ca = file("ca");
  const cert = file("cert");
  const key = file("key");
  if (ca !== undefined) out.ca = [ca];
  if (cert !== undefined) out.cert = cert;
  if (key !== undefined) out.key = key;
  if (s.serverName !== "") out.servername = s.serverName;
  return out;
}
