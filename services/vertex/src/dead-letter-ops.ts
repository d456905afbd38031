import { headers as makeHeaders } from "@nats-io/nats-core";
import type { JetStreamClient } from "@nats-io/jetstream";
import type {
  DeadLetterEntry,
  DeadLetterFailure,
  DeadLetterFilter,
  DeadLetterGroup,
  DeadLetterListReply,
  DeadLetterListRequest,
  DeadLetterPurgeReply,
  DeadLetterReplayReply,
  DeadLetterShowReply,
} from "@machina/protos";
import type { MeshNames } from "@machina/subjects";
import { CONTENT_TYPE_JSON, MachinaError, SENDER_HEADER, toMachinaError } from "@machina/wire";
import { parseFilter } from "./dead-letter-filter";
import type { LetterFilter } from "./dead-letter-filter";
import { decodePayload } from "./dead-letter-payload";
import type { DeadLetterStore, StoredLetter } from "./dead-letter-store";

// Most letters dlq.list lists one by one; a bigger limit is refused rather than cut silently.
const MAX_LIST_LIMIT = 1000;
// Groups and failures beyond these are counted, not listed: a reply must stay under NATS' max payload.
const MAX_GROUPS = 500;
const MAX_FAILURES = 100;

/** List, show, replay and purge over the dead-letter stream. */
export class DeadLetterOps {
  constructor(
    private readonly store: DeadLetterStore,
    private readonly js: JetStreamClient,
    private readonly names: MeshNames,
    /** Node id sent as Machina-Sender on replayed messages. */
    private readonly sender: string,
  ) {}

  /** Counts by (code, original subject), oldest group first, plus the oldest `limit` letters. */
  async list(req: DeadLetterListRequest): Promise<DeadLetterListReply> {
    if (req.limit < 0 || req.limit > MAX_LIST_LIMIT) {
      throw new MachinaError(
        "BAD_REQUEST",
        `limit ${req.limit}: list between 0 (counts only) and ${MAX_LIST_LIMIT} letters; narrow the filter to see others`,
        {
          details: { field: "limit", max: MAX_LIST_LIMIT },
        },
      );
    }
    const filter = parseFilter(this.names, req);
    const groups = new Map<string, DeadLetterGroup>();
    const letters: DeadLetterEntry[] = [];
    let total = 0;
    for await (const l of this.select(filter)) {
      total++;
      // The scan runs oldest first, so a group's first letter is its oldest and Map order is group age.
      const key = `${l.code}\n${l.subject}`;
      const g = groups.get(key);
      if (g) g.count++;
      else
        groups.set(key, {
          code: l.code,
          subject: l.subject,
          type: l.type,
          stream: l.stream,
          count: 1,
          oldestTime: l.time,
          oldestSeq: l.seq,
        });
      if (letters.length < req.limit) letters.push(entryOf(l));
    }
    const all = [...groups.values()];
    return { total, groups: all.slice(0, MAX_GROUPS), letters, moreGroups: Math.max(0, all.length - MAX_GROUPS) };
  }

  /** One letter by DLQ sequence with its payload decoded; NOT_FOUND when there is none. */
  async show(seq: number): Promise<DeadLetterShowReply> {
    if (!seq) {
      throw new MachinaError(
        "BAD_REQUEST",
        `give the DLQ sequence of a letter, e.g. {"seq":1}; ${this.names.vertex.dlq.list} '{"limit":10}' lists them`,
        {
          details: { field: "seq" },
        },
      );
    }
    const l = await this.store.get(seq);
    if (!l) {
      throw new MachinaError(
        "NOT_FOUND",
        `no dead letter with seq ${seq} in ${this.store.streamName} (replayed, purged, expired or never stored); ${this.names.vertex.dlq.list} '{"limit":10}' lists them`,
        {
          details: { seq },
        },
      );
    }
    const base = { ...entryOf(l), streamSeq: l.letter?.streamSeq ?? 0, contentType: l.letter?.contentType ?? "" };
    if (!l.letter) {
      return {
        ...base,
        payloadType: "",
        payload: null,
        payloadRaw: l.raw,
        payloadError: `the DLQ message is not a DeadLetter: ${l.undecodable}`,
      };
    }
    const decoded = decodePayload(l.streamKey, l.letter.payload, l.letter.contentType);
    return decoded.json
      ? { ...base, payloadType: decoded.type, payload: decoded.json, payloadRaw: new Uint8Array(0), payloadError: "" }
      : {
          ...base,
          payloadType: decoded.type,
          payload: null,
          payloadRaw: l.letter.payload,
          payloadError: decoded.error ?? "",
        };
  }

  /**
   * Republishes each matching letter to its original subject, oldest first and one at a time (a
   * later letter of a subject must land after an earlier one), and deletes it once stored.
   */
  async replay(req: DeadLetterFilter): Promise<DeadLetterReplayReply> {
    const filter = parseFilter(this.names, req);
    const failures: DeadLetterFailure[] = [];
    let failed = 0;
    let replayed = 0;
    const fail = (seq: number, code: string, reason: string) => {
      failed++;
      if (failures.length < MAX_FAILURES) failures.push({ seq, code, reason });
    };
    const missing = (seq: number) =>
      fail(seq, "NOT_FOUND", `no dead letter with seq ${seq} (replayed, purged or never stored)`);
    for await (const l of this.select(filter, missing)) {
      try {
        await this.republish(l);
      } catch (err) {
        const e = toMachinaError(err);
        fail(l.seq, e.code, e.message);
        continue;
      }
      try {
        await this.store.remove(l.seq);
        replayed++;
      } catch (err) {
        // Replaying again within the stream's duplicate window is harmless: the same id is dropped.
        fail(
          l.seq,
          "UNAVAILABLE",
          `republished as replay-${l.seq}, but the dead letter stays (${(err as Error).message}); purge it with {"seqs":[${l.seq}]}`,
        );
      }
    }
    return { replayed, failed, failures };
  }

  /** Deletes every matching letter. */
  async purge(req: DeadLetterFilter): Promise<DeadLetterPurgeReply> {
    const filter = parseFilter(this.names, req);
    if (filter.all) return { purged: await this.store.purgeAll() };
    let purged = 0;
    for await (const l of this.select(filter)) if (await this.store.remove(l.seq)) purged++;
    return { purged };
  }

  private async republish(l: StoredLetter): Promise<void> {
    if (!l.letter) {
      throw new MachinaError(
        "BAD_REQUEST",
        `the DLQ message is not a DeadLetter (${l.undecodable}); purge it with {"seqs":[${l.seq}]}`,
      );
    }
    // Publishing to a subject outside the pipeline would store it nowhere, or in the DLQ itself.
    if (!l.streamKey) {
      throw new MachinaError(
        "BAD_REQUEST",
        `original subject "${l.subject}" belongs to no pipeline stream, so nothing would consume it; purge it with {"seqs":[${l.seq}]}`,
      );
    }
    const h = makeHeaders();
    h.set("Content-Type", l.letter.contentType || CONTENT_TYPE_JSON);
    h.set(SENDER_HEADER, this.sender);
    try {
      // The original Nats-Msg-Id may still sit in the stream's duplicate window and be dropped.
      await this.js.publish(l.subject, l.letter.payload, { msgID: `replay-${l.seq}`, headers: h });
    } catch (err) {
      throw new MachinaError("UNAVAILABLE", `could not republish to ${l.subject}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  // Explicit seqs are fetched one by one; otherwise the whole stream is scanned in order.
  private async *select(filter: LetterFilter, onMissing?: (seq: number) => void): AsyncGenerator<StoredLetter> {
    if (!filter.seqs) {
      for await (const l of this.store.scan()) if (filter.matches(l)) yield l;
      return;
    }
    for (const seq of filter.seqs) {
      const l = await this.store.get(seq);
      if (!l) onMissing?.(seq);
      else if (filter.matches(l)) yield l;
    }
  }
}

function entryOf(l: StoredLetter): DeadLetterEntry {
  return {
    seq: l.seq,
    stream: l.stream,
    subject: l.subject,
    type: l.type,
    code: l.code,
    message: l.letter?.errorMessage ?? `not a DeadLetter: ${l.undecodable}`,
    deliveries: l.letter?.deliveries ?? 0,
    time: l.time,
  };
}
