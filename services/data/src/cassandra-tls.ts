import type { ConnectionOptions } from "node:tls";
import type { TlsSettings } from "@machina/config";
import { tlsOptions, tlsWanted } from "@machina/runtime";
import type { ReadText } from "@machina/runtime";

/** `cassandra.tls`: the client TLS settings plus a switch for TLS with the defaults alone (system CAs). */
export interface CassandraTls extends TlsSettings {
  enabled: boolean;
}

/**
 * The driver's `sslOptions` from `cassandra.tls`, or undefined for plain CQL: TLS is on when
 * `enabled` or any other key is set. The server's certificate is verified unless `verify` is
 * false (the driver alone would not verify: its default is `rejectUnauthorized: false`).
 */
export function cassandraSslOptions(tls: CassandraTls, read?: ReadText): ConnectionOptions | undefined {
  if (!tls.enabled && !tlsWanted(tls)) return undefined;
  return tlsOptions(tls, "cassandra.tls", read);
}
