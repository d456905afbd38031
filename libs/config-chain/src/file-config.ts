import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { envName, getPath, leafPaths, loadComponents, resolveConfigSource, screamingSnake } from "@machina/config";
import type { ConfigSourceOptions } from "@machina/config";
import { SERVICES } from "@machina/subjects";
import type { ConfigTree } from "./config-patch";
import { rootHash } from "./config-patch";

/** One environment variable that overrides a component leaf (highest precedence, above patches). */
export interface EnvSetting {
  /** Path tokens from the top of the tree: service, kind, name, then the leaf's keys. */
  tokens: string[];
  /** The variable, e.g. `MACHINA_FETCH_SOURCES_SITESTATS_MANAGER_BASE_URL`. */
  name: string;
  /** Its value as the component loader reads it (numbers, booleans, lists parsed). */
  value: unknown;
}

/** The component config as the files give it: what the chain's root hash covers. */
export interface FileConfig {
  /** `{ <service>: { <kind>: { <name>: component } } }`, default folder merged under the mode folder. */
  tree: ConfigTree;
  /** SHA-256 of the tree's canonical JSON. */
  root: string;
  /** Env overrides found for leaves of the file components; they apply over every patch. */
  env: EnvSetting[];
  /** Config root and mode the tree was read from. */
  configDir: string;
  mode: string;
  /**
   * The files each component of a kind no variable overrides came from, by `<service>/<kind>/<name>`:
   * such a component is read from the tree as it stands, naming its files, instead of parsing
   * them again. A kind with a `MACHINA_<SERVICE>_<KIND>_` variable has no entries here.
   */
  origins: Map<string, readonly string[]>;
}

/**
 * Reads every component folder `config/{default,<mode>}/<service>/<kind>/`. The tree leaves the
 * environment out, so replicas that read the same files agree on the root whatever their env;
 * env overrides are listed apart, to lay over the patched tree in each process.
 */
export function loadFileConfig(opts: ConfigSourceOptions = {}): FileConfig {
  const { configDir, mode, env } = resolveConfigSource(opts);
  const tree: ConfigTree = {};
  const settings: EnvSetting[] = [];
  const envNames = Object.keys(env).filter((n) => env[n] !== undefined);
  const origins = new Map<string, readonly string[]>();
  for (const kind of kindFolders(configDir, mode)) {
    const [service, kindName] = kind.split("/");
    const fromFiles = loadComponents(kind, { configDir, mode, env: {} });
    // Only a kind some variable may override is read a second time with the env, and only such
    // components are walked leaf by leaf: a 100,000-lead ledger is otherwise parsed twice and
    // its every leaf named, all garbage, which sets the process's peak memory.
    const kindPrefix = ["MACHINA", screamingSnake(service), screamingSnake(kindName)].join("_") + "_";
    const overridden = envNames.some((n) => n.startsWith(kindPrefix));
    const withEnv = overridden
      ? new Map(loadComponents(kind, { configDir, mode, env }).map((c) => [c.name, c.doc]))
      : new Map<string, unknown>();
    const components: Record<string, unknown> = {};
    for (const c of fromFiles) {
      components[c.name] = c.doc;
      if (!overridden) origins.set(`${kind}/${c.name}`, c.origins);
      // The same names the component loader reads; the value is its reading of the variable.
      const prefix = ["MACHINA", screamingSnake(service), screamingSnake(kindName), screamingSnake(c.name)].join("_");
      if (!overridden || !envNames.some((n) => n.startsWith(`${prefix}_`))) continue;
      for (const leaf of leafPaths(c.doc)) {
        const name = envName(prefix, leaf);
        if (env[name] === undefined) continue;
        settings.push({
          tokens: [service, kindName, c.name, ...leaf.split(".")],
          name,
          value: getPath(withEnv.get(c.name), leaf),
        });
      }
    }
    (tree[service] ??= {})[kindName] = components;
  }
  return { tree, root: rootHash(tree), env: settings, configDir, mode, origins };
}

/** `<service>/<kind>` of every component folder in the default and mode folders, sorted. */
export function kindFolders(configDir: string, mode: string): string[] {
  const found = new Set<string>();
  for (const folder of mode === "default" ? ["default"] : ["default", mode]) {
    for (const service of SERVICES) {
      const dir = path.join(configDir, folder, service);
      if (!isDir(dir)) continue;
      for (const kind of readdirSync(dir)) if (isDir(path.join(dir, kind))) found.add(`${service}/${kind}`);
    }
  }
  return [...found].sort();
}

function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}
