import type { SeriesReply } from "@machina/protos";

/** A numeric series as two parallel columns: epoch-ms times (ascending) and values (NaN for null). */
export interface Columns {
  times: Float64Array;
  values: Float64Array;
}

/** Float64 columns of a data.series reply; copied when the bytes are not 8-byte aligned in their buffer. */
export function replyColumns(reply: SeriesReply): Columns {
  return { times: floats(reply.times, reply.count), values: floats(reply.values, reply.count) };
}

function floats(bytes: Uint8Array, count: number): Float64Array {
  if (bytes.byteLength !== count * 8)
    throw new Error(`data.series reply: expected ${count * 8} bytes for ${count} points, got ${bytes.byteLength}`);
  if (bytes.byteOffset % 8 === 0) return new Float64Array(bytes.buffer, bytes.byteOffset, count);
  return new Float64Array(bytes.slice().buffer, 0, count);
}

/** Joins pages of columns into one pair, without a copy when there is only one page. */
export function concatColumns(pages: readonly Columns[]): Columns {
  if (pages.length === 1) return pages[0];
  const n = pages.reduce((s, p) => s + p.times.length, 0);
  const times = new Float64Array(n);
  const values = new Float64Array(n);
  let at = 0;
  for (const p of pages) {
    times.set(p.times, at);
    values.set(p.values, at);
    at += p.times.length;
  }
  return { times, values };
}
