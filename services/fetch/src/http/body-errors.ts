// The errors of a body the fetch service will not take: one over its cap, one it cannot decode.
// Neither is retried (asking again gets the same body), and each says what to change.
import { MachinaError } from "@machina/wire";
import { formatByteSize, type SourceDef } from "../source";
import type { BodyDecodeError, BodyTooLargeError } from "./body-reader";

/** UPSTREAM for a body past the cap, naming the source, query and cap and where to raise it. */
export function bodyTooLarge(def: SourceDef, query: string, label: string, err: BodyTooLargeError): MachinaError {
  const cap = formatByteSize(err.maxBytes);
  const q = def.queries.get(query);
  const setBy =
    q?.maxBodyBytes !== undefined
      ? `queries.${query}.max_body`
      : def.manager.maxBodyBytes !== undefined && def.manager.maxBodyBytes !== null
        ? "manager.max_body"
        : "the default";
  const decoded = err.encoding === null ? "" : ` once ${err.encoding}-decoded`;
  return new MachinaError(
    "UPSTREAM",
    `source ${def.name}, query ${query}: the answer to ${label} is larger than the ${cap} body cap${decoded} (set by ${setBy}); raise max_body on queries.${query} (or manager.max_body for every query) in ${def.origin}, e.g. max_body: ${formatByteSize(err.maxBytes * 2)}, or ask for less per page`,
    {
      retryable: false,
      cause: err,
      details: { maxBytes: err.maxBytes, ...(err.encoding === null ? {} : { encoding: err.encoding }) },
    },
  );
}

/** UPSTREAM for a body that is not in the encoding it claims (or in one not asked for). */
export function undecodable(def: SourceDef, label: string, err: BodyDecodeError): MachinaError {
  return new MachinaError(
    "UPSTREAM",
    `source ${def.name} answered ${label} with a body that ${err.message.replace(/^the response body /, "")}; the upstream or a proxy on the way mangles its content-encoding`,
    { retryable: false, cause: err, details: { encoding: err.encoding } },
  );
}
