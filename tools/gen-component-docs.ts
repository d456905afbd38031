// Writes docs/components.md from the schemas every service declares; `--check` fails when the
// committed page is stale (run by `make lint`), so the reference can never drift from the code.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { renderComponentDocs } from "@machina/config";
import { NAME_RULE } from "@machina/subjects";
import { componentKinds as aggregateKinds } from "@machina/aggregate";
import { componentKinds as computeKinds } from "@machina/compute";
import { componentKinds as dataKinds } from "@machina/data";
import { componentKinds as fetchKinds } from "@machina/fetch";
import { componentKinds as invokeKinds } from "@machina/invoke";

const OUT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../docs/components.md");

const INTRO = `# Component reference

Generated from the component schemas by \`make docs\`; do not edit by hand (\`make lint\` fails when
this page and the schemas disagree).

Every component is one file under \`config/<mode>/<kind>/\`, deep-merged over \`config/default/<kind>/\`
(YAML over JSON over XML for the same name), then overridden by env vars
\`MACHINA_<SERVICE>_<KIND>_<NAME>_<KEY>\` (e.g. \`MACHINA_FETCH_SOURCES_SITESTATS_MANAGER_BASE_URL\`).
A bad file stops the service at start with \`<file>: <field path>: <problem>\`.

**Names** (of sources, queries, entity types and their fields, ledgers, query sets, triggers,
aggregators, computations, and so of files) follow one rule: ${NAME_RULE}. Upper case and \`-\` are
refused rather than folded, because a name becomes a subject token, a KV key, a CQL table or
column and an env var part, where \`Website\`/\`website\` or \`site-stats\`/\`site_stats\` would meet.

**Durations** are a number and a unit: \`250ms\`, \`30s\`, \`15m\`, \`1h\`, \`7d\`. A bare number is refused,
because \`300\` could mean milliseconds, seconds or minutes.
`;

const text = renderComponentDocs(
  [...fetchKinds, ...invokeKinds, ...aggregateKinds, ...dataKinds, ...computeKinds],
  INTRO,
);

if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(OUT, "utf8");
  } catch {
    // A missing page is stale like any other.
  }
  if (current !== text) {
    console.error("docs/components.md is stale: run `make docs` and commit the result");
    process.exit(1);
  }
} else {
  writeFileSync(OUT, text);
  console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
}
