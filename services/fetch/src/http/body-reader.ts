// Reading a response body under a size cap, decoding gzip, deflate and brotli on the way. The
// cap holds for the bytes on the wire and again for the decoded bytes, so a small compressed
// answer that inflates without end (a zip bomb) is cut off at the cap like a large plain one:
// the body is never held past the cap, whatever it claims to be.
import type { IncomingMessage } from "node:http";
import { Transform, type TransformCallback } from "node:stream";
import zlib from "node:zlib";

/** The encodings decoded, as sent in `accept-encoding`. */
export const ACCEPT_ENCODING = "gzip, deflate, br";

/** The response body grew past `maxBytes`; the request was dropped. */
export class BodyTooLargeError extends Error {
  override readonly name = "BodyTooLargeError";
  /**
   * @param maxBytes the cap
   * @param encoding the content-encoding whose decoded output passed the cap; null when the
   *   bytes on the wire (or the declared content-length) did
   */
  constructor(
    readonly maxBytes: number,
    readonly encoding: string | null = null,
  ) {
    super(
      encoding === null
        ? `the response body exceeded ${maxBytes} bytes`
        : `the response body exceeded ${maxBytes} bytes once ${encoding}-decoded`,
    );
  }
}

/** The body could not be decoded: an encoding not asked for, or corrupt compressed data. */
export class BodyDecodeError extends Error {
  override readonly name = "BodyDecodeError";
  constructor(
    readonly encoding: string,
    reason: string,
  ) {
    super(`the response body could not be ${encoding}-decoded (${reason})`);
  }
}

/** Where {@link collectBody} reports: exactly one of the two is called, once. */
export interface BodySink {
  done(body: Buffer): void;
  fail(err: Error): void;
}

/**
 * Reads `res` to its end through the decoders its content-encoding names and hands the decoded
 * bytes to `sink.done`, or an error to `sink.fail` (then the streams are torn down; the caller
 * destroys the request, dropping the socket).
 */
export function collectBody(res: IncomingMessage, maxBytes: number, sink: BodySink): void {
  const encodings = (res.headers["content-encoding"] ?? "")
    .split(",")
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== "" && e !== "identity");
  const declared = Number(res.headers["content-length"]);
  if (declared > maxBytes) return sink.fail(new BodyTooLargeError(maxBytes));
  let decoders: Transform[];
  try {
    // Applied in the order listed, so undone from the last one back.
    decoders = encodings.toReversed().map(decoderOf);
  } catch (err) {
    res.resume();
    return sink.fail(err as Error);
  }
  let settled = false;
  const fail = (err: Error) => {
    if (settled) return;
    settled = true;
    for (const d of decoders) d.destroy();
    sink.fail(err);
  };
  const outer = encodings.length === 0 ? null : encodings.join(", ");
  let size = 0;
  const chunks: Buffer[] = [];
  const take = (chunk: Buffer) => {
    if (settled) return;
    size += chunk.length;
    if (size > maxBytes) fail(new BodyTooLargeError(maxBytes, outer));
    else chunks.push(chunk);
  };
  const finish = () => {
    if (settled) return;
    settled = true;
    sink.done(Buffer.concat(chunks));
  };

  const undone = encodings.toReversed();
  decoders.forEach((d, i) => {
    d.on("error", (err: Error) => fail(new BodyDecodeError(undone[i], err.message)));
    if (i > 0) decoders[i - 1].pipe(d);
  });
  const head = decoders.at(0);
  const tail = decoders.at(-1);
  tail?.on("data", take);
  tail?.on("end", finish);

  let wire = 0;
  res.on("data", (chunk: Buffer) => {
    if (settled) return;
    wire += chunk.length;
    if (wire > maxBytes) return fail(new BodyTooLargeError(maxBytes));
    if (head === undefined) return take(chunk);
    // Fed by hand rather than piped, so that an empty body never reaches a decoder below.
    if (!head.write(chunk)) {
      res.pause();
      head.once("drain", () => res.resume());
    }
  });
  res.on("end", () => {
    // An empty body (a 204, an empty error page) labelled gzip is still empty, not corrupt gzip.
    if (head === undefined || wire === 0) finish();
    else head.end();
  });
}

// Decoders keep zlib's strict end check: a truncated stream is an error, not a shorter body.
function decoderOf(encoding: string): Transform {
  switch (encoding) {
    case "gzip":
    case "x-gzip":
      return zlib.createGunzip();
    case "br":
      return zlib.createBrotliDecompress();
    case "deflate":
      return new DeflateDecoder();
    default:
      throw new BodyDecodeError(encoding, `not one of ${ACCEPT_ENCODING}, which were asked for`);
  }
}

// HTTP's "deflate" is zlib-wrapped (RFC 9110), but some servers send raw deflate, as browsers
// accept: the first two bytes tell which, so the inflater is chosen once they have arrived.
class DeflateDecoder extends Transform {
  private inner: zlib.Inflate | zlib.InflateRaw | null = null;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.inner === null) {
      const zlibHeader = chunk.length >= 2 && (chunk[0] & 0x0f) === 8 && ((chunk[0] << 8) | chunk[1]) % 31 === 0;
      const inner = zlibHeader ? zlib.createInflate() : zlib.createInflateRaw();
      inner.on("data", (d: Buffer) => this.push(d));
      inner.on("error", (err) => this.destroy(err));
      this.inner = inner;
    }
    this.inner.write(chunk, () => cb());
  }

  override _flush(cb: TransformCallback): void {
    if (this.inner === null) return cb();
    this.inner.once("end", () => cb());
    this.inner.end();
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.inner?.destroy();
    cb(err);
  }
}
