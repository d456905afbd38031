import * as z from "zod";
import { defineKind, describeValue, field } from "@machina/config";
import { AUTH } from "./auth-schema";
import { bodySizeField } from "./byte-size";
import { CODE } from "./code-schema";
import { INCREMENTAL, INCREMENTAL_DOC } from "../incremental/incremental-schema";
import { EXTRACT } from "./extract-schema";
import { PAGINATE, paginateParams } from "./paginate-schema";
import { poolSchema } from "./pool-schema";
import { ENV_NAME, HEADER_NAME, HOUR_MS, must } from "./schema-rules";

/** HTTP methods a query may use. */
export const METHODS = ["GET", "POST", "PUT", "DELETE"] as const;

const headerMap = (doc: string) =>
  field.keyed(HEADER_NAME, "an HTTP header name", field.scalarText()).default({}).describe(doc);

const WINDOW = field.object({
  limit: field.int(1).describe("Most calls allowed in one window."),
  per: field.duration().describe("Window length, e.g. `1s`, `1m`, `1d`."),
  align: field
    .oneOf(["rolling", "clock"])
    .default("rolling")
    .describe(
      "`rolling`: the limit holds in every interval of that length; `clock`: per epoch-aligned window, for APIs with a fixed reset grid (e.g. a daily reset at 00:00 UTC). Default rolling.",
    ),
});

const LIMITER = z
  .union(
    [
      z.literal("unlimited"),
      field
        .object({
          windows: field
            .list(WINDOW, { min: 1, emptyHint: "declare at least one window, or write `limiter: unlimited`" })
            .describe("Rate windows, all enforced at once across every replica."),
        })
        .superRefine((v, ctx) => {
          const seen = new Set<number>();
          v.windows.forEach((w, i) => {
            if (seen.has(w.per))
              ctx.addIssue({
                code: "custom",
                path: ["windows", i, "per"],
                message: "two windows have the same length; merge them into one with the smaller limit",
                input: w.per,
              });
            seen.add(w.per);
          });
        }),
    ],
    {
      error: (iss) =>
        iss.code === "invalid_union"
          ? `expected "unlimited" or a mapping with windows, got ${describeValue(iss.input)}`
          : undefined,
    },
  )
  .describe(
    "How calls to the source are rationed: `unlimited`, or `windows` of at most `limit` calls `per` duration. With a `pool`, each credential has these windows to itself.",
  );

const DATA_ROW = field.object({
  type: field.name().describe("The entity type whose clean record holds the value."),
  key: field.names(field.scalarText()).describe("The record's key fields and values, e.g. `{ id: default }`."),
  field: field.name().describe("The field whose value is used (objects and lists as JSON text)."),
  refresh: field
    .duration({ min: 1_000 })
    .default(300_000)
    .describe("Re-read this often too, since change announcements are at most once. Default `5m`."),
});

const DATA_ENTRY = field
  .object({
    env: field
      .text()
      .regex(ENV_NAME, { error: must("an environment variable name") })
      .optional()
      .describe("Environment variable holding the value (a secret)."),
    file: field
      .text()
      .optional()
      .describe(
        "File holding the value, e.g. a mounted Kubernetes Secret (a secret; one trailing newline is dropped).",
      ),
    value: field.scalarText().optional().describe("The value itself, written in the source file (not a secret)."),
    row: DATA_ROW.optional().describe(
      "A field of a clean record in the data layer, read at start and again whenever data announces a change of that record (and every `refresh`). Not a secret.",
    ),
  })
  .superRefine((v, ctx) => {
    const given = Object.keys(v);
    if (given.length !== 1)
      ctx.addIssue({
        code: "custom",
        message: `give exactly one of env, file, value, row (got ${given.length === 0 ? "none" : given.join(", ")})`,
        input: v,
      });
  });

const BASE_URL = field.text().transform((text, ctx) => {
  const url = text.replace(/\/+$/, "");
  const fail = (message: string) => {
    ctx.addIssue({ code: "custom", message, input: text });
    return z.NEVER;
  };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail(`expected an absolute http(s) URL such as https://api.example.com, got ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    return fail(`scheme must be http or https, got ${parsed.protocol}`);
  if (parsed.search !== "" || parsed.hash !== "")
    return fail("must not carry a query string or fragment; put parameters in each query's params");
  return url;
});

const MANAGER = field
  .object({
    type: field
      .oneOf(["http", "http-auth"])
      .describe("`http`, or `http-auth` for an API that needs credentials (then `auth` is required)."),
    base_url: BASE_URL.describe("Absolute http(s) URL every query path is appended to; a trailing slash is dropped."),
    timeout: field
      .duration({ max: HOUR_MS })
      .prefault("10s")
      .describe("Longest wait for one upstream answer, at most 1h; default 10s."),
    max_body: bodySizeField()
      .optional()
      .describe(
        "Largest response body a query accepts, after decompression (gzip, deflate, br), e.g. `10MB`; a query's own `max_body` wins. Units B, KB, MB, GB are powers of 1024. Default 10MB.",
      ),
    auth: AUTH,
    retries: field
      .object({
        max: field
          .int(0, 10)
          .default(2)
          .describe("Retries after the first attempt (5xx, network error, timeout); 0 disables retrying. Default 2."),
        base_delay: field
          .duration({ max: HOUR_MS })
          .prefault("200ms")
          .describe("First backoff delay, doubled per retry, at most 1h; default 200ms."),
        max_delay: field
          .duration({ max: HOUR_MS })
          .prefault("10s")
          .describe("Longest backoff delay, at most 1h; default 10s."),
      })
      .prefault({})
      .describe("Retry policy for retryable upstream failures."),
    headers: headerMap(
      "Headers sent with every query of the source (a query's own headers win); values are templates. Default none.",
    ),
  })
  .superRefine((v, ctx) => {
    if (v.type === "http-auth" && v.auth === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["auth"],
        message: "is required when manager.type is http-auth",
        input: v.auth,
      });
    if (v.type !== "http-auth" && v.auth !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["auth"],
        message: "is only allowed with manager.type http-auth; change the type or remove auth",
        input: v.auth,
      });
  });

const QUERY = field
  .object({
    method: field.oneOf(METHODS).default("GET").describe("HTTP method; default GET."),
    path: field
      .text()
      .superRefine((v, ctx) => {
        if (!v.startsWith("/"))
          ctx.addIssue({
            code: "custom",
            message: `must start with "/" (it is appended to manager.base_url), got ${JSON.stringify(v)}`,
            input: v,
          });
        else if (v.includes("?"))
          ctx.addIssue({ code: "custom", message: "must not contain a query string; move it to params", input: v });
      })
      .describe("Path below `manager.base_url`, starting with `/`; a template (`{{lead.x}}` values are URL-encoded)."),
    params: field
      .keyed(/^.+$/, "non-empty", field.scalarText())
      .default({})
      .describe("Query-string parameters; values are templates. Default none."),
    headers: headerMap("Headers of this query, over the manager's; values are templates. Default none."),
    body: z
      .json()
      .optional()
      .describe(
        "JSON body (POST and PUT only); every string in it is a template, and a string that is one placeholder keeps the lead value's type.",
      ),
    paginate: PAGINATE.optional().describe(
      "Fetch further pages: `type` says how the next page is found; paging stops at the first page with no next one, an empty page, the declared total or `max_pages`. A FetchTask's progress is kept while it pages, so one stopped on page k (quota, crash, upstream error) resumes at page k. Default: one request.",
    ),
    extract: EXTRACT,
    incremental: INCREMENTAL.optional().describe(INCREMENTAL_DOC),
    max_body: bodySizeField()
      .optional()
      .describe(
        "Largest response body this query accepts, after decompression, e.g. `10MB`; over it the call fails (UPSTREAM, not retried). Default: `manager.max_body`.",
      ),
    format: field
      .oneOf(["auto", "json", "ndjson"])
      .default("auto")
      .describe(
        "How the body is parsed: `json`, `ndjson` (one JSON value per line, the list of them the body), or `auto`: NDJSON when the content-type is application/x-ndjson (or application/ndjson, application/jsonl), JSON otherwise. Default auto.",
      ),
  })
  .superRefine((v, ctx) => {
    if (v.body !== undefined && (v.method === "GET" || v.method === "DELETE")) {
      ctx.addIssue({
        code: "custom",
        path: ["body"],
        message: `a ${v.method} request cannot carry a body; use POST or PUT, or move the values to params`,
        input: v.body,
      });
    }
    for (const param of v.paginate === undefined ? [] : paginateParams(v.paginate)) {
      if (Object.hasOwn(v.params, param))
        ctx.addIssue({
          code: "custom",
          path: ["params", param],
          message: "is set by paginate; remove it from params",
          input: v.params[param],
        });
    }
  });

const SOURCE = field.object({
  name: field.name().describe("The source's name; must match the file name."),
  limiter: LIMITER,
  data: field
    .names(DATA_ENTRY)
    .default({})
    .describe("Values templates read as `{{data.<name>}}`: from env, a file or the file itself. Default none."),
  manager: MANAGER.describe("How the source's API is called."),
  pool: poolSchema(WINDOW),
  queries: field
    .names(QUERY)
    .default({})
    .describe(
      "Declarative queries, by name; requests and query sets name them. At least one, unless `code` implements some.",
    ),
  code: CODE.optional(),
});

// A source needs something to run: declared queries, or a module that implements some.
const RUNNABLE_SOURCE = SOURCE.superRefine((v, ctx) => {
  if (Object.keys(v.queries).length === 0 && v.code === undefined)
    ctx.addIssue({
      code: "custom",
      path: ["queries"],
      message: "declare at least one query, or a module under code.module that implements some",
      input: v.queries,
    });
});

/** An external API: its shared rate limiter, secrets, HTTP manager and declarative queries. */
export const SOURCE_KIND = defineKind({
  kind: "fetch/sources",
  doc: "An external API the fetch service calls: the rate windows every replica shares, where its secrets come from, how its HTTP manager authenticates and retries, and the queries that map responses to entity records. Templates (`{{lead.<field>}}`, `{{data.<name>}}`) are checked when the service starts; credentials may only use `{{data.<name>}}`.",
  schema: RUNNABLE_SOURCE,
  example: `name: sitestats
limiter:
  windows:
    - { limit: 10, per: 1s }
    - { limit: 5000, per: 1d, align: clock }
data:
  api_key: { env: SITESTATS_API_KEY }
manager:
  type: http-auth
  base_url: https://api.example.com
  auth: { type: api_key, header: X-Api-Key, value: "{{data.api_key}}" }
queries:
  site:
    path: /v1/sites/{{lead.domain}}
    extract:
      site: { type: website, path: site }
`,
});
