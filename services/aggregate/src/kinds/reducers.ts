import type { JsonValue } from "@machina/protos";
import type { Reducer } from "../config/aggregator-kind";

/** What a reducer has seen of one field in one window; plain JSON so it is stored as is. */
export type Acc =
  | { s: number; n: number } // mean
  | { s: number } // sum
  | { v: number } // min, max
  | { v: JsonValue; t: number } // first, last: the value and its event time
  | { n: number }; // count

/** Reducers that need numbers. */
export const NUMERIC_REDUCERS: ReadonlySet<Reducer> = new Set(["mean", "sum", "min", "max"]);

/**
 * Folds a non-null value seen at event time `t` into `acc` (undefined: the first one). Ties in
 * time keep the earlier record for `first` and take the later one for `last`, so records in
 * stream order decide.
 */
export function fold(reducer: Reducer, acc: Acc | undefined, value: JsonValue, t: number): Acc {
  switch (reducer) {
    case "mean": {
      const a = acc as { s: number; n: number } | undefined;
      return { s: (a?.s ?? 0) + (value as number), n: (a?.n ?? 0) + 1 };
    }
    case "sum":
      return { s: ((acc as { s: number } | undefined)?.s ?? 0) + (value as number) };
    case "min": {
      const a = acc as { v: number } | undefined;
      return a === undefined || (value as number) < a.v ? { v: value as number } : a;
    }
    case "max": {
      const a = acc as { v: number } | undefined;
      return a === undefined || (value as number) > a.v ? { v: value as number } : a;
    }
    case "first": {
      const a = acc as { v: JsonValue; t: number } | undefined;
      return a === undefined || t < a.t ? { v: value, t } : a;
    }
    case "last": {
      const a = acc as { v: JsonValue; t: number } | undefined;
      return a === undefined || t >= a.t ? { v: value, t } : a;
    }
    case "count":
      return { n: ((acc as { n: number } | undefined)?.n ?? 0) + 1 };
  }
}

/** The reduced value of a field (null when the window held no value of it; count says 0). */
export function result(reducer: Reducer, acc: Acc | undefined): JsonValue {
  if (acc === undefined) return reducer === "count" ? 0 : null;
  switch (reducer) {
    case "mean": {
      const a = acc as { s: number; n: number };
      return a.s / a.n;
    }
    case "sum":
      return (acc as { s: number }).s;
    case "min":
    case "max":
    case "first":
    case "last":
      return (acc as { v: JsonValue }).v;
    case "count":
      return (acc as { n: number }).n;
  }
}
