import * as z from "zod";
import { field } from "@machina/config";
import { ENV_NAME, must } from "./schema-rules";

// A week: long enough to sit out a key's revocation, short enough that a fixed key comes back.
const MAX_BENCH_MS = 7 * 86_400_000;

const SECRET = field
  .object({
    env: field
      .text()
      .regex(ENV_NAME, { error: must("an environment variable name") })
      .optional()
      .describe("Environment variable holding the value."),
    file: field.text().optional().describe("File holding the value (one trailing newline is dropped)."),
  })
  .superRefine((v, ctx) => {
    const given = Object.keys(v);
    if (given.length !== 1)
      ctx.addIssue({
        code: "custom",
        message: `give exactly one of env, file (got ${given.length === 0 ? "none" : given.join(", ")})`,
        input: v,
      });
  });

const LIST = field.object({
  file: field
    .text()
    .describe("File listing one credential per line; blank lines and lines starting with `#` are skipped."),
  data: field.name().describe("The data name each line supplies, e.g. `api_key` for `{{data.api_key}}`."),
});

/** A window as the source schema gives it (`per` in ms). */
export interface PoolWindowValue {
  readonly limit: number;
  readonly per: number;
  readonly align: "rolling" | "clock";
}

/**
 * `pool`: several credentials for one source, each with its own quota. Built around the
 * source's window schema so both agree.
 */
export function poolSchema<W extends z.ZodType<PoolWindowValue>>(window: W) {
  return field
    .object({
      credentials: field
        .names(field.names(SECRET).describe("One credential: its data values by data name, each from env or a file."))
        .default({})
        .describe(
          "Named credentials: each maps the data names `manager.auth` reads (e.g. `api_key`) to an env var or file. The name is the credential's id in logs and quota reports.",
        ),
      lists: field
        .list(LIST)
        .default([])
        .describe(
          "Files of credentials, one per line, for pools whose auth reads one data value. Each line's id is a short hash of the source name and the value (`k` and 12 hex digits), never the value.",
        ),
      bench: field
        .duration({ min: 1_000, max: MAX_BENCH_MS })
        .prefault("10m")
        .describe(
          "How long a credential the upstream refuses (HTTP 401 or 403) rests, on every replica, before it is tried again; at most 7d. Default 10m.",
        ),
      windows: field
        .list(window)
        .default([])
        .describe(
          "Windows all credentials share (e.g. a per-IP limit), on top of the `limiter` windows each credential has to itself. Default none.",
        ),
    })
    .superRefine((v, ctx) => {
      if (Object.keys(v.credentials).length === 0 && v.lists.length === 0)
        ctx.addIssue({ code: "custom", message: "declare credentials or lists (or remove pool)", input: v });
      const seen = new Set<number>();
      v.windows.forEach((w, i) => {
        const per = w.per;
        if (seen.has(per))
          ctx.addIssue({
            code: "custom",
            path: ["windows", i, "per"],
            message: "two windows have the same length; merge them into one with the smaller limit",
            input: per,
          });
        seen.add(per);
      });
    })
    .optional()
    .describe(
      "A credential pool: several credentials (API keys from env vars or files) for the source, each holding the `limiter` windows on its own across every replica. A call goes to the credential with room soonest and most room; one the upstream refuses with 401/403 is benched (see `bench`), logged by id, and the call retried on another. Pool data names are declared here, not under `data`, and only `manager.auth` may use them. Default: no pool.",
    );
}
