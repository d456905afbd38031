/**
 * Subjects of the JetStream API and of KV buckets, as the server defines them: what a NATS user
 * must be allowed to publish to manage or use a stream, a consumer or a bucket. Only the calls
 * Machina's services and nats.js make are listed.
 */

const API = "$JS.API";

/** The subject filter a consumer-create request carries (`>` and `*` tokens as literals). */
export type FilterPattern = string;

/** JetStream API subjects, by stream and consumer. */
export const jsApi = {
  /** Account info: `jetstreamManager()` asks it first. */
  accountInfo: `${API}.INFO`,
  streamInfo: (stream: string) => `${API}.STREAM.INFO.${stream}`,
  streamCreate: (stream: string) => `${API}.STREAM.CREATE.${stream}`,
  streamUpdate: (stream: string) => `${API}.STREAM.UPDATE.${stream}`,
  streamPurge: (stream: string) => `${API}.STREAM.PURGE.${stream}`,
  streamMsgGet: (stream: string) => `${API}.STREAM.MSG.GET.${stream}`,
  streamMsgDelete: (stream: string) => `${API}.STREAM.MSG.DELETE.${stream}`,
  /** Direct get, by sequence (`…GET.<stream>`) and last-by-subject (`…GET.<stream>.<subject>`). */
  directGet: (stream: string) => [`${API}.DIRECT.GET.${stream}`, `${API}.DIRECT.GET.${stream}.>`],
  /**
   * Creating or updating a named consumer: nats.js puts the name and the one filter subject in the
   * subject, so a permission can pin both; `name` `*` allows any name with that filter.
   */
  consumerCreate: (stream: string, name: string, filter: FilterPattern) =>
    `${API}.CONSUMER.CREATE.${stream}.${name}.${filter}`,
  /** Ephemeral and ordered consumers (KV watches, scans): `…CREATE.<stream>` and with a name and filter. */
  consumerCreateAny: (stream: string) => [`${API}.CONSUMER.CREATE.${stream}`, `${API}.CONSUMER.CREATE.${stream}.>`],
  consumerInfo: (stream: string, name: string) => `${API}.CONSUMER.INFO.${stream}.${name}`,
  consumerDelete: (stream: string, name: string) => `${API}.CONSUMER.DELETE.${stream}.${name}`,
  consumerList: (stream: string) => `${API}.CONSUMER.LIST.${stream}`,
  /** A pull request for a consumer's next messages. */
  msgNext: (stream: string, name: string) => `${API}.CONSUMER.MSG.NEXT.${stream}.${name}`,
  /** Acks, naks and in-progress of a consumer's messages (the messages' reply subjects). */
  ack: (stream: string, name: string) => `$JS.ACK.${stream}.${name}.>`,
  /** Flow-control replies of push consumers (KV watches). */
  flowControl: (stream: string) => `$JS.FC.${stream}.>`,
} as const;

/** The stream behind a KV bucket. */
export function kvStream(bucket: string): string {
  return `KV_${bucket}`;
}

/** Every key subject of a KV bucket: publishing there writes, deletes or purges keys. */
export function kvKeys(bucket: string): string {
  return `$KV.${bucket}.>`;
}
