import * as z from "zod";
import { field } from "@machina/config";
import { HEADER_NAME, HOUR_MS, must } from "./schema-rules";

// OAuth2 sets these form parameters itself; an extra param of the same name would fight it.
const OAUTH2_RESERVED = ["grant_type", "scope", "client_id", "client_secret"];

const TOKEN_URL = field.text().superRefine((text, ctx) => {
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    ctx.addIssue({
      code: "custom",
      message: `expected an absolute http(s) URL such as https://auth.example.com/oauth/token, got ${JSON.stringify(text)}`,
      input: text,
    });
    return;
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    ctx.addIssue({ code: "custom", message: `scheme must be http or https, got ${parsed.protocol}`, input: text });
  else if (parsed.username !== "" || parsed.password !== "")
    ctx.addIssue({
      code: "custom",
      message: "must not carry credentials; put them in client_id and client_secret",
      input: text,
    });
  else if (parsed.hash !== "") ctx.addIssue({ code: "custom", message: "must not carry a fragment", input: text });
});

const OAUTH2 = field
  .object({
    type: z.literal("oauth2"),
    token_url: TOKEN_URL.describe(
      "Token endpoint, an absolute http(s) URL; the token is requested with the client credentials grant (a form-encoded POST).",
    ),
    client_id: field.scalarText().describe("OAuth2 client id; may only use `{{data.<name>}}` placeholders."),
    client_secret: field
      .scalarText()
      .describe("OAuth2 client secret; may only use `{{data.<name>}}` placeholders (keep it in an env var or file)."),
    scopes: field
      .list(field.text())
      .default([])
      .describe("Scopes requested, sent space-separated as `scope`; default none (the server's default scopes)."),
    auth_style: field
      .oneOf(["header", "body"])
      .default("header")
      .describe(
        "How the client authenticates to the token endpoint: `header`, HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1); `body`, `client_id` and `client_secret` in the form. Default header.",
      ),
    params: field
      .keyed(/^.+$/, "non-empty", field.scalarText())
      .default({})
      .describe(
        "Extra form parameters of the token request (e.g. `audience`); values may only use `{{data.<name>}}` placeholders. Default none.",
      ),
    refresh_margin: field
      .duration({ min: 0, max: HOUR_MS })
      .prefault("30s")
      .describe(
        "A token is replaced this long before it expires (at most half its lifetime early, for short-lived tokens); default 30s. The token is cached per source in each replica, and concurrent calls share one token request.",
      ),
    default_expires_in: field
      .duration({ min: 1_000 })
      .prefault("1h")
      .describe("Lifetime assumed for a token whose response has no `expires_in`; default 1h."),
  })
  .superRefine((v, ctx) => {
    for (const k of Object.keys(v.params)) {
      if (OAUTH2_RESERVED.includes(k))
        ctx.addIssue({
          code: "custom",
          path: ["params", k],
          message: `is set by the oauth2 auth itself (${OAUTH2_RESERVED.join(", ")}); use client_id, client_secret, scopes or auth_style instead`,
          input: v.params[k],
        });
    }
  });

/** `manager.auth`: the credentials of a source, one mapping per kind chosen by `type`. */
export const AUTH = z
  .discriminatedUnion("type", [
    field
      .object({
        type: z.literal("api_key"),
        header: field
          .text()
          .regex(HEADER_NAME, { error: must("an HTTP header name") })
          .optional()
          .describe("Header that carries the key, e.g. `X-Api-Key`."),
        param: field.text().optional().describe("Query-string parameter that carries the key."),
        value: field.scalarText().describe("The key; may only use `{{data.<name>}}` placeholders."),
      })
      .superRefine((v, ctx) => {
        if ((v.header === undefined) === (v.param === undefined)) {
          ctx.addIssue({
            code: "custom",
            message: "api_key needs exactly one of header (e.g. X-Api-Key) or param (query-string name)",
            input: v,
          });
        }
      }),
    field.object({
      type: z.literal("bearer"),
      token: field
        .scalarText()
        .describe("Sent as `Authorization: Bearer <token>`; may only use `{{data.<name>}}` placeholders."),
    }),
    field.object({
      type: z.literal("basic"),
      username: field.scalarText().describe("Basic-auth user; may only use `{{data.<name>}}` placeholders."),
      password: field.scalarText().describe("Basic-auth password; may only use `{{data.<name>}}` placeholders."),
    }),
    OAUTH2,
  ])
  .optional()
  .describe(
    "Credentials, required with type `http-auth` and refused otherwise. On an HTTP 401, `oauth2` fetches a new token and retries the call once; the static kinds fail at once.",
  );
