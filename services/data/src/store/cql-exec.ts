import cassandra from "cassandra-driver";
import { MachinaError } from "@machina/wire";

/** The driver client the data layer runs on. */
export type CqlClient = cassandra.Client;

/** A driver result row. */
export type CqlRow = cassandra.types.Row;

/** Bind parameters of one statement. */
export type CqlParams = readonly unknown[];

/** One statement of a batch. */
export interface CqlStatement {
  readonly query: string;
  readonly params: CqlParams;
}

const codes = cassandra.types.responseErrorCodes;
// Server-side conditions that say "try again later", not "this request is wrong".
const TRANSIENT = new Set<number>([
  codes.unavailableException,
  codes.overloaded,
  codes.isBootstrapping,
  codes.writeTimeout,
  codes.readTimeout,
  codes.writeFailure,
  codes.readFailure,
]);

/** Runs one prepared, idempotent statement; driver errors become MachinaErrors saying what was being done. */
export async function execute(
  client: CqlClient,
  query: string,
  params: CqlParams,
  doing: string,
  options: cassandra.QueryOptions = {},
): Promise<cassandra.types.ResultSet> {
  try {
    return await client.execute(query, params as unknown[], { prepare: true, isIdempotent: true, ...options });
  } catch (err) {
    throw toDataError(err, doing);
  }
}

/** Runs schema DDL. DDL is not prepared: it has no bind markers and runs once, so preparing would only fill server caches. */
export async function executeDdl(client: CqlClient, query: string, doing: string): Promise<void> {
  try {
    await client.execute(query, [], { prepare: false });
  } catch (err) {
    throw toDataError(err, doing);
  }
}

/** Yields the rows of a query page by page until the page state is null (Scylla may return short pages). */
export async function* pages(
  client: CqlClient,
  query: string,
  params: CqlParams,
  doing: string,
  fetchSize = 500,
): AsyncGenerator<CqlRow[]> {
  let pageState: string | undefined;
  do {
    const rs = await execute(client, query, params, doing, { fetchSize, pageState, autoPage: false });
    if (rs.rows.length > 0) yield rs.rows;
    pageState = rs.pageState ?? undefined;
  } while (pageState);
}

/** Runs statements as one unlogged batch; callers only batch rows of one partition. */
export async function executeUnloggedBatch(
  client: CqlClient,
  statements: readonly CqlStatement[],
  doing: string,
): Promise<void> {
  if (statements.length === 0) return;
  if (statements.length === 1) {
    await execute(client, statements[0].query, statements[0].params, doing);
    return;
  }
  try {
    await client.batch(
      statements.map((s) => ({ query: s.query, params: s.params as unknown[] })),
      { prepare: true, logged: false, isIdempotent: true },
    );
  } catch (err) {
    throw toDataError(err, doing);
  }
}

/** Maps a driver error to a MachinaError: unreachable or overloaded cluster → UNAVAILABLE (retryable), anything else → INTERNAL. */
export function toDataError(err: unknown, doing: string): MachinaError {
  if (err instanceof MachinaError) return err;
  const e = cassandra.errors;
  const message = err instanceof Error ? oneLine(err.message) : String(err);
  const text = `data: ${doing}: ${message}`;
  if (err instanceof e.NoHostAvailableError) {
    // The driver's own message inlines every inner error with its stack; name each host and reason instead.
    const inner = Object.entries((err.innerErrors ?? {}) as Record<string, unknown>);
    const reasons = inner.map(
      ([host, cause]) => `${host}: ${cause instanceof Error ? oneLine(cause.message) : String(cause)}`,
    );
    const summary = `data: ${doing}: no host could serve the request (${reasons.join("; ") || message})`;
    // Only misconfiguration (e.g. an unknown localDataCenter) fails with ArgumentError: retrying cannot help.
    if (inner.length > 0 && inner.every(([, cause]) => cause instanceof e.ArgumentError)) {
      return new MachinaError("BAD_REQUEST", summary, { cause: err, retryable: false });
    }
    return new MachinaError("UNAVAILABLE", summary, {
      cause: err,
      retryable: true,
      details: { dependency: "cassandra" },
    });
  }
  if (err instanceof e.OperationTimedOutError || err instanceof e.BusyConnectionError) {
    return new MachinaError("UNAVAILABLE", text, { cause: err, retryable: true, details: { dependency: "cassandra" } });
  }
  if (err instanceof e.ResponseError) {
    if (TRANSIENT.has(err.code))
      return new MachinaError("UNAVAILABLE", text, {
        cause: err,
        retryable: true,
        details: { dependency: "cassandra" },
      });
    if (err.code === codes.badCredentials || err.code === codes.unauthorized) {
      return new MachinaError("UNAVAILABLE", text, { cause: err, retryable: false });
    }
  }
  return new MachinaError("INTERNAL", text, { cause: err, retryable: false });
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, " ").trim();
}
