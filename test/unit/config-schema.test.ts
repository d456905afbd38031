// Covers the component-schema mechanism of @machina/config: one wording for every kind's errors,
// defaults, the name rule, durations, union and key handling, and the generated reference docs.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import YAML from "yaml";
import * as z from "zod";
import { defineKind, field, renderComponentDocs, type ComponentValue } from "@machina/config";
import { isMachinaError, type MachinaError } from "@machina/wire";

const WINDOW = field.object({
  limit: field.int(1).describe("Calls allowed per window."),
  per: field.duration().describe("Window length."),
  align: field.oneOf(["rolling", "clock"]).default("rolling").describe("How windows are placed."),
});

const KIND = defineKind({
  kind: "test/widgets",
  doc: "A widget for these tests.",
  example: "name: w\nlimiter: unlimited\n",
  schema: field.object({
    name: field.name().describe("The widget's name."),
    limiter: z
      .union(
        [
          z.literal("unlimited"),
          field.object({ windows: field.list(WINDOW, { min: 1, emptyHint: "declare at least one window" }) }),
        ],
        {
          error: (iss) => (iss.code === "invalid_union" ? 'expected "unlimited" or a mapping with windows' : undefined),
        },
      )
      .describe("Rate limit."),
    auth: z
      .discriminatedUnion("type", [
        field.object({ type: z.literal("key"), header: field.text() }),
        field.object({ type: z.literal("bearer"), token: field.text() }),
      ])
      .optional(),
    parts: field
      .names(
        field.object({ every: field.duration({ max: 86_400_000 }).optional(), count: field.int(0, 10).default(3) }),
      )
      .default({}),
    headers: field.keyed(/^[A-Za-z-]+$/, "an HTTP header name", field.scalarText()).default({}),
    enabled: field.flag().default(true),
  }),
});

type Widget = ComponentValue<typeof KIND>;

function problem(raw: unknown): MachinaError {
  try {
    KIND.parse(raw, "config/default/test/widgets/w.yaml");
  } catch (err) {
    assert.ok(isMachinaError(err, "BAD_REQUEST"), `expected BAD_REQUEST, got ${String(err)}`);
    assert.equal(err.retryable, false);
    return err;
  }
  assert.fail("the document was accepted");
}

describe("component schemas", () => {
  it("fills defaults and converts durations and scalars", () => {
    const w: Widget = KIND.parse(
      {
        name: "w",
        limiter: { windows: [{ limit: 2, per: "1s" }] },
        parts: { a: { every: "5m" } },
        headers: { "X-N": 50 },
      },
      "w.yaml",
    );
    assert.deepEqual(w, {
      name: "w",
      limiter: { windows: [{ limit: 2, per: 1000, align: "rolling" }] },
      parts: { a: { every: 300_000, count: 3 } },
      headers: { "X-N": "50" },
      enabled: true,
    });
  });

  it("names the file, the field path, what was expected and what was found", () => {
    const e = problem({ name: "w", limiter: { windows: [{ limit: 0, per: "1s" }] } });
    assert.equal(
      e.message,
      "config/default/test/widgets/w.yaml: limiter.windows[0].limit: expected an integer >= 1, got 0",
    );
    assert.equal(e.details.field, "limiter.windows[0].limit");
    assert.match(
      problem({ name: "w", limiter: "unlimited", parts: { a: { count: 11 } } }).message,
      /parts\.a\.count: expected an integer from 0 to 10, got 11$/,
    );
    assert.match(
      problem({ name: "w", limiter: "unlimited", enabled: "yes" }).message,
      /enabled: expected true or false, got "yes"$/,
    );
    assert.match(problem({ limiter: "unlimited" }).message, /: name: is required$/);
    assert.match(problem("name: w").message, /w\.yaml: expected a mapping, got "name: w"$/);
  });

  it("lists every problem in details, the first in the message", () => {
    const e = problem({ name: "W", limiter: { windows: [] }, extra: 1 });
    const problems = e.details.problems as string[];
    assert.equal(problems.length, 3, problems.join("\n"));
    assert.ok(e.message.endsWith(problems[0]));
  });

  it("refuses unknown keys with the nearest known one", () => {
    assert.match(
      problem({ name: "w", limiter: { windows: [{ limit: 1, per: "1s", aling: "clock" }] } }).message,
      /limiter\.windows\[0\]\.aling: unknown key \(did you mean "align"\?\); expected one of limit, per, align$/,
    );
    assert.match(
      problem({ name: "w", limiter: "unlimited", zzz: 1 }).message,
      /: zzz: unknown key; expected one of name, limiter/,
    );
  });

  it("reports the branch of a union the input was meant for", () => {
    assert.match(
      problem({ name: "w", limiter: "unlimted" }).message,
      /limiter: expected "unlimited" or a mapping with windows$/,
    );
    assert.match(
      problem({ name: "w", limiter: { windows: [] } }).message,
      /limiter\.windows: declare at least one window$/,
    );
    assert.match(
      problem({ name: "w", limiter: { windows: [{ limit: 1, per: "1 sec" }] } }).message,
      /limiter\.windows\[0\]\.per: expected a duration such as/,
    );
    assert.match(
      problem({ name: "w", limiter: "unlimited", auth: { type: "oauth" } }).message,
      /auth\.type: expected one of key, bearer, got "oauth"$/,
    );
    assert.match(
      problem({ name: "w", limiter: "unlimited", auth: { type: "bearer" } }).message,
      /auth\.token: is required$/,
    );
  });

  it("applies the one name rule to names and name-keyed mappings, suggesting the spelling", () => {
    assert.match(
      problem({ name: "Web-Site", limiter: "unlimited" }).message,
      /name: "Web-Site" is not a name: .*\(write "web_site"\)$/,
    );
    assert.match(
      problem({ name: "w", limiter: "unlimited", parts: { Daily: {} } }).message,
      /parts\.Daily: "Daily" is not a name/,
    );
    assert.match(problem({ name: "a".repeat(43), limiter: "unlimited" }).message, /longer than 42 characters/);
    assert.match(
      problem({ name: 7, limiter: "unlimited" }).message,
      /name: expected a name \(a lower-case letter.*\), got 7$/,
    );
  });

  it("refuses __proto__ and other unsafe keys from parsed documents without touching prototypes", () => {
    const fromJson = JSON.parse('{"name":"w","limiter":"unlimited","parts":{"__proto__":{"count":1}}}');
    assert.match(problem(fromJson).message, /parts\.__proto__: this name is reserved/);
    const fromYaml = YAML.parse("name: w\nlimiter: unlimited\nheaders:\n  __proto__: x\n");
    assert.match(problem(fromYaml).message, /headers\.__proto__: this name is reserved/);
    const ctor = KIND.parse(JSON.parse('{"name":"w","limiter":"unlimited","parts":{"constructor":{}}}'), "w.yaml");
    assert.ok(Object.hasOwn(ctor.parts, "constructor"), "constructor is an ordinary name");
    assert.equal(({} as Record<string, unknown>).count, undefined, "Object.prototype untouched");
  });

  it("refuses a bare number as a duration, asking for a unit, and honours bounds", () => {
    assert.match(
      problem({ name: "w", limiter: { windows: [{ limit: 1, per: 1000 }] } }).message,
      /per: expected a duration with a unit .* got the bare number 1000; write 1000ms or 1000s/,
    );
    assert.match(
      problem({ name: "w", limiter: { windows: [{ limit: 1, per: "0s" }] } }).message,
      /per: must be at least 1ms, got "0s"$/,
    );
    assert.match(
      problem({ name: "w", limiter: "unlimited", parts: { a: { every: "2d" } } }).message,
      /every: must be at most 1d, got "2d"$/,
    );
  });

  it("checks the file name of a loaded component against the name rule", () => {
    assert.throws(
      () =>
        KIND.parseDoc({
          name: "My-Widget",
          origins: ["config/default/test/widgets/My-Widget.yaml"],
          doc: { name: "w", limiter: "unlimited" },
        }),
      /My-Widget\.yaml: the file name is the component's name: "My-Widget" is not a name/,
    );
    const c = KIND.parseDoc({
      name: "w",
      origins: ["a.yaml", "env MACHINA_X"],
      doc: { name: "w", limiter: "unlimited" },
    });
    assert.equal(c.origin, "a.yaml + env MACHINA_X");
    assert.equal(c.value.enabled, true);
  });

  it("renders reference docs with every field, its type, default and description", () => {
    const md = renderComponentDocs([KIND], "# Components");
    assert.match(md, /^# Components\n/);
    assert.match(md, /## test\/widgets/);
    assert.match(md, /\| `limiter\.windows\[\]\.per` \| duration \| yes \| {2}\| Window length\. \|/);
    assert.match(
      md,
      /\| `limiter\.windows\[\]\.align` \| one of `rolling`, `clock` \| {2}\| `"rolling"` \| How windows are placed\. \|/,
    );
    assert.match(md, /\| `auth\.header \(type: key\)` \| string \| yes \|/);
    assert.match(md, /\| `parts` \| mapping of <name> to mapping/);
    assert.match(md, /\| `parts\.<name>\.count` \| integer 0–10 \| {2}\| `3` \|/);
    assert.equal(renderComponentDocs([KIND], "# Components"), md, "deterministic");
  });
});
