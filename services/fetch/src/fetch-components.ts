import type { ComponentDoc, ConfigSourceOptions } from "@machina/config";
import { componentError } from "@machina/config";
import type { ComponentSet, ServiceComponents } from "@machina/runtime";
import { loadCodeModules } from "./code-source";
import { SOURCE_KIND, compileSource } from "./source";
import type { SourceDef } from "./source";

/**
 * Compiles source documents as setup does, code modules imported: what fetch runs and what it
 * checks a patch with are one code path.
 */
export async function compileSources(docs: readonly ComponentDoc[], files: ConfigSourceOptions): Promise<SourceDef[]> {
  const declared = docs.map((c) => {
    const origin = c.origins.join(" + ");
    // In a patched tree the key is the name: a `name` inside that disagrees would serve another source.
    if (typeof c.doc.name === "string" && c.doc.name !== c.name)
      throw componentError(
        origin,
        "name",
        `"${c.doc.name}" differs from the component's key "${c.name}"; use one name`,
      );
    return compileSource({ name: c.name, ...c.doc }, origin);
  });
  // Source modules are imported now, so one that is missing or incomplete stops start-up (or the patch).
  return loadCodeModules(declared, files);
}

/** Fetch's component kinds for live config: a patch to a source is compiled by fetch itself. */
export const fetchComponents: ServiceComponents = {
  kinds: [SOURCE_KIND.kind],
  schemas: [SOURCE_KIND],
  async validate(set: ComponentSet, files: ConfigSourceOptions) {
    await compileSources(set.docs(SOURCE_KIND.kind), files);
  },
};
