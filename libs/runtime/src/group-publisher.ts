import type { JetStreamClient } from "@nats-io/jetstream";
import type { MeshClient } from "./mesh-client";
import type { MessageName, MessageTypes, RecordBatch } from "@machina/protos";
import { GroupCommit, groupMsgId } from "./group-commit";
import { publishDurable } from "./publish";

/** Options of a {@link GroupPublisher}. */
export interface GroupPublisherOptions<N extends MessageName, T> {
  /** How to publish: the service's MeshClient (cheapest) or a JetStream client. */
  via: MeshClient | JetStreamClient;
  /** Message type of what is published. */
  message: N;
  /** The message that carries a group of items. */
  wrap(items: T[]): Partial<MessageTypes[N]>;
  /** Deterministic id of one item (its message id when it travels alone). */
  idOf(item: T): string;
  /** Sender node id (Machina-Sender). */
  sender: string;
  /** Most items per message. Default 512. */
  maxItems?: number;
}

interface Entry<T> {
  item: T;
  timing?: string;
}

/**
 * Publishes items to durable subjects, grouping the items handed in together for one subject into
 * one message ({@link GroupCommit}); `publish` resolves once the message holding the item is
 * stored (PubAck). A group's Machina-Timing is its first item's.
 */
export class GroupPublisher<N extends MessageName, T> {
  private readonly groups = new Map<string, GroupCommit<Entry<T>>>();

  constructor(private readonly opts: GroupPublisherOptions<N, T>) {}

  /** Queues `item` for `subject`; resolves once it is stored on the stream. */
  publish(subject: string, item: T, timing?: string): Promise<void> {
    let group = this.groups.get(subject);
    if (group === undefined) {
      const o = this.opts;
      group = new GroupCommit<Entry<T>>({
        maxItems: o.maxItems,
        async flush(entries) {
          const items = entries.map((e) => e.item);
          await publishDurable(o.via, subject, o.message, o.wrap(items), {
            msgID: groupMsgId(items.map((i) => o.idOf(i))),
            timing: entries[0].timing,
            sender: o.sender,
          });
        },
      });
      this.groups.set(subject, group);
    }
    return group.add({ item, timing });
  }
}

/** Publishes RecordBatch items grouped into RecordBatches messages (AGGREGATE and STORE), ids from the batch ids. */
export function recordBatchesPublisher(
  via: MeshClient | JetStreamClient,
  sender: string,
): GroupPublisher<"RecordBatches", RecordBatch> {
  return new GroupPublisher({
    via,
    message: "RecordBatches",
    wrap: (batches) => ({ batches }),
    idOf: (b) => b.id,
    sender,
  });
}
