import * as z from "zod";
import { defineKind, field } from "@machina/config";
import type { ComponentValue } from "@machina/config";

/** Aggregator kinds this build knows. */
export const AGGREGATOR_KINDS = ["passthrough", "forward_fill", "window", "merge_partials"] as const;

/** An aggregator kind. */
export type AggregatorKind = (typeof AGGREGATOR_KINDS)[number];

/** Per-field reducers of a window. */
export const REDUCERS = ["mean", "sum", "min", "max", "first", "last", "count"] as const;

/** A window reducer. */
export type Reducer = (typeof REDUCERS)[number];

/** Most partitions of one type. */
export const MAX_PARTITIONS = 256;

/** Most windows one record falls in (size / hop). */
export const MAX_WINDOWS_PER_RECORD = 100;

const KEY = z
  .union([field.name(), field.list(field.name(), { min: 1, emptyHint: "name at least one key field" })])
  .optional()
  .describe(
    "Key field (or list of key fields) naming one entity, whose state is kept apart; default: the `key` of `config/<mode>/data/types/<type>.yaml`",
  );

const PARTITIONS = field
  .int(1, MAX_PARTITIONS)
  .default(1)
  .describe(
    "Partitions of the type by key hash (subjects `<prefix>.task.aggregate.<type>.<n>`); each is worked on by exactly one aggregate replica at a time, so more partitions spread a heavy type over more replicas; default 1. Changing it while state is kept is refused",
  );

const TIME_FIELD = field
  .name()
  .optional()
  .describe(
    "Record field holding the record's event time (epoch ms, or an ISO 8601 text); default: when the record was fetched",
  );

const passthrough = field.object({
  aggregator: z.literal("passthrough").describe("How records are aggregated"),
});

const forwardFill = field.object({
  aggregator: z.literal("forward_fill"),
  key: KEY,
  partitions: PARTITIONS,
  time_field: TIME_FIELD,
  fields: field
    .list(field.name(), { min: 1, emptyHint: "name at least one field, or leave `fields` out to fill every field" })
    .optional()
    .describe("Fields whose last known value is carried into nulls; default every field"),
  max_age: field
    .duration()
    .optional()
    .describe(
      "A value older than this (event time of the record minus that of the value) is no longer carried; default no limit",
    ),
});

const window = field.object({
  aggregator: z.literal("window"),
  key: KEY,
  partitions: PARTITIONS,
  time_field: TIME_FIELD,
  size: field.duration().describe("Window length; windows are aligned to the epoch (a 1h window starts on the hour)"),
  hop: field
    .duration()
    .optional()
    .describe("Start of one window to the next, for hopping (overlapping) windows; default `size` (tumbling)"),
  fields: field
    .names(field.oneOf(REDUCERS), { emptyHint: "give at least one field its reducer, e.g. `visits: mean`" })
    .describe(
      "Each output field and its reducer: mean, sum, min, max (numbers), first, last (by event time), count (records with a value)",
    ),
  default: field
    .oneOf(REDUCERS)
    .optional()
    .describe("Reducer of the fields `fields` does not list; default: those fields are left out"),
  allowed_lateness: field
    .duration({ min: 0 })
    .prefault("0s")
    .describe(
      "A window closes, and its record is emitted, once the watermark (the latest event time seen in the partition) passes its end by this much; default 0s",
    ),
  late: field
    .oneOf(["drop", "correct"])
    .default("drop")
    .describe(
      "A record for a window that already closed: `drop` counts it (machina_aggregate_records_total, outcome late_dropped) and leaves it out; `correct` emits the window again with it (same dump row, so the stored record is replaced); default drop",
    ),
  keep_closed: field
    .duration()
    .optional()
    .describe(
      "With late: correct, how long after closing (in event time) a window can still be corrected; later records are dropped and counted; default `size`",
    ),
});

const mergePartials = field.object({
  aggregator: z.literal("merge_partials"),
  key: KEY,
  partitions: PARTITIONS,
  required: field
    .list(field.name(), { min: 1, emptyHint: "name the fields a complete record has" })
    .describe("Fields a complete record has; partial records of a key are merged until all of them are present"),
  timeout: field
    .duration()
    .describe(
      "How long a key's partials are held after the first one arrived; then what is known is emitted, marked incomplete",
    ),
  incomplete_field: field
    .name()
    .default("incomplete")
    .describe(
      "Boolean field set to true on a record emitted at the timeout (declare it in the data type to store it); default incomplete",
    ),
});

/** `config/<mode>/aggregate/aggregators/<type>.yaml`: how records of one entity type are aggregated. */
export const aggregatorKind = defineKind({
  kind: "aggregate/aggregators",
  doc: "One file per entity type, named after the type: every type that sources extract needs one, or its records are refused (NOT_FOUND) rather than stored unaggregated. `passthrough` stores each batch as fetched. The stateful kinds keep per-key state in the JetStream KV bucket `<prefix>_aggregate_state`, which survives restarts and crashes: `forward_fill` carries the last known value of each field into nulls; `window` reduces the records of each key over epoch-aligned tumbling or hopping windows and emits one record per key and window when the window closes by event time; `merge_partials` holds partial records per key until the required fields are present or a timeout passes. A file without `aggregator` is passthrough.",
  example:
    "aggregator: window\nsize: 1h\nallowed_lateness: 5m\nlate: correct\nfields:\n  visits: mean\n  rank: min\n  title: last\npartitions: 4\n",
  schema: z.discriminatedUnion("aggregator", [passthrough, forwardFill, window, mergePartials]),
});

/** A validated aggregator file. */
export type AggregatorSpec = ComponentValue<typeof aggregatorKind>;

/** The spec of a stateful kind (all but passthrough). */
export type StatefulSpec = Exclude<AggregatorSpec, { aggregator: "passthrough" }>;

/** A window aggregator's spec. */
export type WindowSpec = Extract<AggregatorSpec, { aggregator: "window" }>;

/** A forward_fill aggregator's spec. */
export type ForwardFillSpec = Extract<AggregatorSpec, { aggregator: "forward_fill" }>;

/** A merge_partials aggregator's spec. */
export type MergePartialsSpec = Extract<AggregatorSpec, { aggregator: "merge_partials" }>;
