import type * as z from "zod";
import { MachinaError } from "@machina/wire";
import { nameProblem } from "@machina/subjects";
import type { ComponentDoc } from "../components";
import { issueMessage } from "./issue-messages";

/** What a component kind declares once: where its files live, what it is for, its schema. */
export interface KindSpec<S extends z.ZodType> {
  /** Folder under `config/<mode>/`, e.g. `fetch/sources`. */
  readonly kind: string;
  /** One paragraph for the reference docs (`docs/components.md`). */
  readonly doc: string;
  /** The schema: validation, defaults and the TypeScript type all come from it. */
  readonly schema: S;
  /** A short YAML example for the docs. Default none. */
  readonly example?: string;
}

/** A validated component: its name (the file's base name), where it came from, and its value. */
export interface Component<T> {
  readonly name: string;
  /** Files (and env vars) it was merged from, joined with ` + `, for error messages. */
  readonly origin: string;
  readonly value: T;
}

/** A declared component kind. */
export interface ComponentKind<S extends z.ZodType> extends KindSpec<S> {
  /** Validates one document; throws BAD_REQUEST `<origin>: <field path>: <problem>`. */
  parse(raw: unknown, origin: string): z.output<S>;
  /** Validates a loaded component, its file name included (it must be a name). */
  parseDoc(doc: ComponentDoc): Component<z.output<S>>;
}

/** The validated value type of a kind. */
export type ComponentValue<K> = K extends ComponentKind<infer S> ? z.output<S> : never;

/** One problem found in a document. */
export interface Problem {
  /** Dotted field path with list indexes, e.g. `limiter.windows[0].per`; empty for the whole document. */
  readonly path: string;
  readonly message: string;
}

/** Declares a component kind; every kind of the mesh is declared through this one function. */
export function defineKind<S extends z.ZodType>(spec: KindSpec<S>): ComponentKind<S> {
  const kind: ComponentKind<S> = {
    ...spec,
    parse: (raw, origin) => parseDocument(spec.schema, raw, origin),
    parseDoc(doc) {
      const origin = doc.origins.join(" + ");
      const problem = nameProblem(doc.name);
      if (problem !== null)
        throw componentError(origin, [{ path: "", message: `the file name is the component's name: ${problem}` }]);
      return { name: doc.name, origin, value: kind.parse(doc.doc, origin) };
    },
  };
  return kind;
}

/**
 * Validates `raw` against any schema built from `field` (a component, request args…) with the
 * house error wording; throws BAD_REQUEST naming `origin` and the field path.
 */
export function parseDocument<S extends z.ZodType>(schema: S, raw: unknown, origin: string): z.output<S> {
  // zod drops an own `__proto__` key silently (as JSON.parse and YAML produce it); a dropped
  // key would be a setting that vanished, so it is refused before parsing.
  const reserved = protoKeys(raw, []);
  if (reserved.length > 0)
    throw componentError(
      origin,
      reserved.map((path) => ({ path: formatPath(path), message: RESERVED })),
    );
  const r = schema.safeParse(raw, { error: issueMessage, reportInput: true });
  if (r.success) return r.data;
  // A misspelt key shows up twice: as unknown, and as the required key it should have been; the
  // unknown one (with its did-you-mean) is the one that tells the operator what to fix.
  const issues = [...r.error.issues].sort(
    (a, b) => Number(b.code === "unrecognized_keys") - Number(a.code === "unrecognized_keys"),
  );
  throw componentError(origin, problemsOf(issues));
}

/**
 * BAD_REQUEST for a bad component: the message names the file, the field path and the first
 * problem; `details.problems` lists them all.
 */
export function componentError(origin: string, problems: readonly Problem[] | string, problem?: string): MachinaError {
  const list: readonly Problem[] =
    typeof problems === "string" ? [{ path: problems, message: problem ?? "is invalid" }] : problems;
  const first = list[0] ?? { path: "", message: "is invalid" };
  return new MachinaError("BAD_REQUEST", `${origin}: ${first.path === "" ? "" : `${first.path}: `}${first.message}`, {
    retryable: false,
    details: {
      origin,
      field: first.path,
      problems: list.map((p) => (p.path === "" ? p.message : `${p.path}: ${p.message}`)),
    },
  });
}

const RESERVED = "this name is reserved (it is the prototype of JavaScript objects); choose another";

function protoKeys(v: unknown, at: PropertyKey[]): PropertyKey[][] {
  if (v === null || typeof v !== "object") return [];
  if (Array.isArray(v)) return v.flatMap((x, i) => protoKeys(x, [...at, i]));
  const out: PropertyKey[][] = Object.hasOwn(v, "__proto__") ? [[...at, "__proto__"]] : [];
  for (const [k, x] of Object.entries(v)) if (k !== "__proto__") out.push(...protoKeys(x, [...at, k]));
  return out;
}

/** Formats a path of keys and list indexes: `["a", 0, "b"]` → `a[0].b`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out === "" ? String(p) : `.${String(p)}`;
  return out;
}

/** Flattens zod issues into problems, unwrapping unions and keys to the most specific one. */
export function problemsOf(issues: readonly z.core.$ZodIssue[], base: readonly PropertyKey[] = []): Problem[] {
  const out: Problem[] = [];
  for (const iss of issues) {
    const path = [...base, ...iss.path];
    if (iss.code === "unrecognized_keys") {
      out.push({ path: formatPath([...path, iss.keys[0]]), message: iss.message });
    } else if (iss.code === "invalid_union" && !("discriminator" in iss && iss.discriminator !== undefined)) {
      // The branch the input got furthest into (all its issues below the union's own level)
      // says what is really wrong; failing that, the union's own message.
      const deep = iss.errors.filter(
        (branch) =>
          branch.length > 0 &&
          branch.every((b) => b.path.length > 0 || b.code === "custom" || b.code === "unrecognized_keys"),
      );
      if (deep.length > 0) out.push(...problemsOf(deep.sort((a, b) => a.length - b.length)[0], path));
      else out.push({ path: formatPath(path), message: iss.message });
    } else if ((iss.code === "invalid_key" || iss.code === "invalid_element") && iss.issues.length > 0) {
      out.push({ path: formatPath(path), message: iss.issues[0].message });
    } else {
      out.push({ path: formatPath(path), message: iss.message });
    }
  }
  return out;
}
