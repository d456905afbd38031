// The stateful aggregator kinds (forward_fill, window, merge_partials): pure state machines over
// per-key state, with what they share (reducers, event time, the due queue).
export { makeKind } from "./make-kind";
export type { InRecord, KindContext, Outcome, StatefulKind } from "./kind";
export { DueQueue } from "./due-queue";
export type { DueItem } from "./due-queue";
