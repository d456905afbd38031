export { ErrorCode, statusOf, MachinaError, isMachinaError, toMachinaError } from "./errors";
export type { MachinaErrorOptions } from "./errors";
export {
  CONTENT_TYPE_JSON,
  CONTENT_TYPE_PROTOBUF,
  encodingOf,
  contentTypeOf,
  decodeBody,
  encodeBody,
  sanitize,
} from "./encoding";
export type { Encoding, HeaderReader } from "./encoding";
export { ERROR_HEADER, ERROR_CODE_HEADER, errorReply, readErrorReply } from "./error-wire";
export {
  TIMING_HEADER,
  SENDER_HEADER,
  RESOURCES_HEADER,
  DEAD_LETTER_ERROR_HEADER,
  appendTiming,
  parseTiming,
} from "./timing";
export type { TimingEntry } from "./timing";
export { makeMeta, percentQuota } from "./meta";
export { FixedHeaders } from "./fast-headers";
export { decodePlainHeaders, useFastHeaderDecoding } from "./fast-header-decode";
export { encodeCommand, useFastCommandEncoding } from "./fast-command-encode";
