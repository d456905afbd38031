import { DeliverPolicy } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { MsgHdrs } from "@nats-io/nats-core";
import type { DeadLetter } from "@machina/protos";
import type { PipelineStream } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import { DEAD_LETTER_ERROR_HEADER, MachinaError, decodeBody, encodingOf } from "@machina/wire";

/** A pipeline stream a dead letter can come from. */
export type WorkStream = Exclude<PipelineStream, "DLQ">;

const WORK_STREAMS: readonly WorkStream[] = ["FETCH", "FETCHED", "AGGREGATE", "STORE"];

// Letters per ordered-consumer pull: one round trip per batch instead of one per letter.
const SCAN_BATCH = 256;
// Only reached when letters vanish between the stream info and the pull (a concurrent purge).
const SCAN_IDLE_MS = 3000;

/** One message of the DLQ stream, described for listing, filtering and replay. */
export interface StoredLetter {
  /** Sequence in the DLQ stream. */
  seq: number;
  /** When it was dead-lettered, epoch ms. */
  time: number;
  /** The decoded letter; undefined when the message is not a DeadLetter. */
  letter?: DeadLetter;
  /** Why the message is not a DeadLetter. */
  undecodable?: string;
  /** The message body as stored. */
  raw: Uint8Array;
  code: string;
  /** Original subject. */
  subject: string;
  /** Original stream name, e.g. MACHINA_STORE. */
  stream: string;
  /** Pipeline stream the original subject belongs to, if any. */
  streamKey?: WorkStream;
  /** Token after `<prefix>.task.<stage>.`: entity type or source. */
  type: string;
}

// Which pipeline stream captures `subject`, and its type token (entity type or source).
function originOf(names: MeshNames, subject: string): { streamKey?: WorkStream; type: string } {
  for (const key of WORK_STREAMS) {
    // `<p>.task.store.>` → `<p>.task.store.`; the dot keeps fetch from matching fetched.
    const literal = names.streamSubjects[key].slice(0, -1);
    if (subject.startsWith(literal)) return { streamKey: key, type: subject.slice(literal.length).split(".")[0] };
  }
  return { type: "" };
}

/** Reads and deletes the messages of one network's DLQ stream. */
export class DeadLetterStore {
  /** Name of the DLQ stream. */
  readonly streamName: string;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly names: MeshNames,
  ) {
    this.streamName = names.streams.DLQ;
  }

  /**
   * Every letter stored when the call starts, oldest first; gaps (deleted seqs) are skipped and
   * letters that arrive meanwhile (e.g. a replay failing again) are left for the next call.
   */
  async *scan(): AsyncGenerator<StoredLetter> {
    const { state } = await this.unavailableAs("read", () => this.jsm.streams.info(this.streamName));
    if (state.messages === 0) return;
    const last = state.last_seq;
    const consumer = await this.unavailableAs("read", () =>
      this.js.consumers.get(this.streamName, {
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: state.first_seq,
      }),
    );
    try {
      for (;;) {
        // Collected before yielding: the caller may take longer than the pull stays open.
        const batch: StoredLetter[] = [];
        let end = false;
        const messages = await consumer.fetch({ max_messages: SCAN_BATCH, expires: SCAN_IDLE_MS });
        for await (const m of messages) {
          if (m.seq > last) {
            end = true;
            break;
          }
          batch.push(this.describe(m.seq, m.time.getTime(), m.data, m.headers));
          if (m.seq >= last || m.info.pending === 0) {
            end = true;
            break;
          }
        }
        yield* batch;
        if (end || batch.length === 0) return;
      }
    } finally {
      // Ordered consumers expire on their own; deleting frees the server sooner.
      await consumer.delete().catch(() => undefined);
    }
  }

  /** The letter at DLQ sequence `seq`, or undefined when there is none (replayed, purged, never stored). */
  async get(seq: number): Promise<StoredLetter | undefined> {
    const sm = await this.unavailableAs("read", () => this.jsm.streams.getMessage(this.streamName, { seq }));
    return sm ? this.describe(sm.seq, sm.time.getTime(), sm.data, sm.header) : undefined;
  }

  /** Deletes one letter; false when it was already gone (another replica or request got there first). */
  async remove(seq: number): Promise<boolean> {
    try {
      // no_erase: the letter's bytes need no overwriting, and overwriting costs a disk write.
      return await this.jsm.streams.deleteMessage(this.streamName, seq, false);
    } catch (err) {
      if (/no message found|not found/i.test((err as Error).message)) return false;
      throw new MachinaError(
        "UNAVAILABLE",
        `could not delete dead letter ${seq} from ${this.streamName}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /** Deletes every letter stored when the call starts; letters arriving meanwhile stay. */
  async purgeAll(): Promise<number> {
    const { state } = await this.unavailableAs("read", () => this.jsm.streams.info(this.streamName));
    if (state.messages === 0) return 0;
    const r = await this.unavailableAs("purge", () =>
      this.jsm.streams.purge(this.streamName, { seq: state.last_seq + 1 }),
    );
    return r.purged;
  }

  private describe(seq: number, time: number, raw: Uint8Array, headers: MsgHdrs | undefined): StoredLetter {
    const headerCode = headers?.get(DEAD_LETTER_ERROR_HEADER) ?? "";
    let letter: DeadLetter;
    try {
      letter = decodeBody("DeadLetter", raw, encodingOf(headers));
    } catch (err) {
      // Anyone may publish under `<prefix>.dlq.>`; such a message is listed so it can be purged.
      return {
        seq,
        time,
        raw,
        undecodable: (err as Error).message,
        code: headerCode,
        subject: "",
        stream: "",
        type: "",
      };
    }
    return {
      seq,
      time,
      raw,
      letter,
      code: letter.errorCode || headerCode,
      subject: letter.subject,
      stream: letter.stream,
      ...originOf(this.names, letter.subject),
    };
  }

  private async unavailableAs<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw new MachinaError(
        "UNAVAILABLE",
        `could not ${what} the dead-letter stream ${this.streamName}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
}
