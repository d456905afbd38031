import cassandra from "cassandra-driver";

/** Milliseconds in a day. */
export const DAY_MS = 86_400_000;

/** UTC calendar day (`YYYY-MM-DD`) containing epoch milliseconds `t`; the dump and clean partitions are per day. */
export function dayOf(t: number): string {
  const n = Math.floor(t / DAY_MS);
  // Rows of one write mostly fall on one day: formatting a Date for each cost ~1 % of the store path.
  if (n !== lastDay.n) lastDay = { n, text: new Date(n * DAY_MS).toISOString().slice(0, 10) };
  return lastDay.text;
}
let lastDay = { n: Number.NaN, text: "" };

/** A `YYYY-MM-DD` day as the driver's date value; the driver parsing the text of every bound day was 2 % of the store path. */
export function localDateOf(day: string): cassandra.types.LocalDate {
  if (day !== lastDate.day) lastDate = { day, value: cassandra.types.LocalDate.fromString(day) };
  return lastDate.value;
}
let lastDate = { day: "", value: cassandra.types.LocalDate.fromString("1970-01-01") };

/** Start (epoch ms) of the aligned window of `windowSeconds` containing `t`. */
export function windowStartOf(t: number, windowSeconds: number): number {
  const size = windowSeconds * 1000;
  return Math.floor(t / size) * size;
}

/** The `count` UTC days ending with the day of `t`, newest first. */
export function daysBack(t: number, count: number): string[] {
  const today = Math.floor(t / DAY_MS) * DAY_MS;
  return Array.from({ length: count }, (_, i) => dayOf(today - i * DAY_MS));
}
