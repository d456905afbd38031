import { componentError, isPlainObject, loadComponents } from "@machina/config";
import type { ComponentDoc, ConfigSourceOptions } from "@machina/config";
import type { ConfigTree } from "@machina/config-chain";

/**
 * The components of the mesh at one config head, as a service's setup, its validation and its
 * live apply read them: one source of component documents, so a service compiles the same way
 * whether it starts, checks a patch or takes one live.
 */
export class ComponentSet {
  private constructor(
    /** The head the components are from (the root hash when unpatched; "" without a chain). */
    readonly head: string,
    /** The whole component tree, env overrides laid over it. */
    readonly tree: ConfigTree,
    private readonly files: ConfigSourceOptions | undefined,
    /** Components taken from `tree` as they are, naming these files; any other is read from `files`. */
    private readonly fileOrigins: ReadonlyMap<string, readonly string[]> = new Map(),
  ) {}

  /**
   * The set the files give: `docs` reads them with the component loader, so error messages name
   * the files (as before there was a chain).
   */
  static fromFiles(
    head: string,
    tree: ConfigTree,
    files: ConfigSourceOptions,
    origins?: ReadonlyMap<string, readonly string[]>,
  ): ComponentSet {
    return new ComponentSet(head, tree, files, origins);
  }

  /** The set a patched (or proposed) tree gives; origins are `<service>/<kind>/<name>`. */
  static fromTree(head: string, tree: ConfigTree): ComponentSet {
    return new ComponentSet(head, tree, undefined);
  }

  /** Every component of `kind` (`<service>/<kind>`, e.g. `fetch/sources`), by name. */
  docs(kind: string): ComponentDoc[] {
    const [service, kindName] = kind.split("/");
    const components = this.tree[service]?.[kindName] ?? {};
    const names = Object.keys(components).sort();
    // Files already parsed into the tree are not parsed again (a 100,000-lead ledger's parse is
    // most of a process's peak memory); a kind an env variable overrides still is.
    // (An empty kind is read from the files: without a readable chain the tree is empty.)
    const fromTree = names.length > 0 && names.every((name) => this.fileOrigins.has(`${kind}/${name}`));
    if (this.files !== undefined && !fromTree) return loadComponents(kind, this.files);
    return names.map((name) => {
      const origin = `${kind}/${name}`;
      const doc = components[name];
      if (!isPlainObject(doc)) throw componentError(origin, "", "a component must be a mapping of keys to values");
      return { name, origins: [...(this.fileOrigins.get(origin) ?? [origin])], doc: structuredClone(doc) };
    });
  }
}
