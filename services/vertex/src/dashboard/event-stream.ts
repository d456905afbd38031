import type { ServerResponse } from "node:http";

/** One open server-sent-events response. */
export interface EventStream {
  /** Sends one named event whose data is `data` as JSON. */
  send(event: string, data: unknown): void;
  /** Ends the response. */
  end(): void;
}

/**
 * Starts a server-sent-events response on `res`. `retryMs` tells the browser how soon to
 * reconnect after the stream breaks (EventSource does so by itself).
 */
export function openEventStream(res: ServerResponse, retryMs: number): EventStream {
  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    Connection: "keep-alive",
    // Proxies such as nginx buffer responses unless told not to, which would hold events back.
    "X-Accel-Buffering": "no",
  });
  res.write(`retry: ${retryMs}\n\n`);
  return {
    send(event, data) {
      // JSON.stringify escapes line breaks, so the payload is always one `data:` line.
      if (!res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    end() {
      if (!res.writableEnded) res.end();
    },
  };
}
