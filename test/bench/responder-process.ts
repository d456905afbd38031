// The IPC protocol every responder process of the request/reply bench speaks with its parent:
// {ready, subject} once it answers, {error} when it cannot start; it stops on a "stop" message,
// on IPC disconnect (the parent went away) and on SIGTERM/SIGINT, so a crashed bench never
// leaves a responder behind.

/** What a responder tells its parent. */
export type ResponderMessage = { type: "ready"; subject: string } | { type: "error"; message: string };

/** A started responder: the subject it answers on and how to stop it. */
export interface StartedResponder {
  subject: string;
  stop(): Promise<void>;
}

function send(m: ResponderMessage): void {
  if (process.send) process.send(m);
  else console.log(JSON.stringify(m));
}

/** Runs `start` as this process's responder under the protocol above. */
export function runResponder(start: () => Promise<StartedResponder>): void {
  let stopping: Promise<void> | undefined;
  let stop: () => Promise<void> = async () => undefined;
  const shutdown = (code: number): void => {
    stopping ??= (async () => {
      // A stop that hangs must not keep the process alive.
      const force = setTimeout(() => process.exit(code || 1), 5000);
      force.unref();
      await stop().catch(() => undefined);
      process.exit(code);
    })();
  };
  process.on("message", (m) => {
    if (m === "stop") shutdown(0);
  });
  process.on("disconnect", () => shutdown(0));
  process.on("SIGTERM", () => shutdown(0));
  process.on("SIGINT", () => shutdown(0));
  start()
    .then((r) => {
      stop = r.stop;
      send({ type: "ready", subject: r.subject });
    })
    .catch((err: unknown) => {
      send({ type: "error", message: String((err as Error)?.stack ?? err) });
      shutdown(1);
    });
}
