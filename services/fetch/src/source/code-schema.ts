import { field } from "@machina/config";
import type { CodeSource } from "../code-source/code-source";

/** Most pages a code query may fetch in one call, whatever `max_pages` says. */
export const CODE_MAX_PAGES = 10_000;

/** The `code` block of a source: a TypeScript module that implements some of its queries. */
export const CODE = field
  .object({
    module: field
      .text()
      .regex(/\.(?:ts|mts|js|mjs)$/, {
        error: (iss) => `must name a .ts, .mts, .js or .mjs file, e.g. ./rankings.ts, got ${JSON.stringify(iss.input)}`,
      })
      .describe(
        "The module, relative to this file's folder (a mode folder first, then `default`), e.g. `./rankings.ts`; its default export implements `CodeSource` from `@machina/fetch`, and its queries join the declared ones.",
      ),
    max_pages: field
      .int(1, CODE_MAX_PAGES)
      .default(100)
      .describe(
        "Most pages one fetch of a code query asks for (a FetchTask counts them across redeliveries); past it the fetch stops and its meta says truncated. Default 100.",
      ),
  })
  .describe(
    "Queries written in TypeScript, for APIs that need code (signed requests, GraphQL): the module builds each request and parses each answer, while the manager sends it under this source's limiter, auth, retries and error mapping. A FetchTask of a code query hands on each page as it comes and keeps its place (the module's token), so one stopped on page k resumes at page k. Default none.",
  );

/** A compiled `code` block; `loaded` is set once the module has been imported and checked. */
export interface CodeSpec {
  /** The module path as written in the source file. */
  readonly module: string;
  readonly maxPages: number;
  readonly loaded?: LoadedCode;
}

/** A code module after loading: where it was found and what it implements. */
export interface LoadedCode {
  /** The module's file, relative to the working directory when below it, for messages. */
  readonly file: string;
  readonly impl: CodeSource;
}

/** Compiles the validated `code` block of a source. */
export function codeSpecOf(v: { module: string; max_pages: number }): CodeSpec {
  return { module: v.module, maxPages: v.max_pages };
}
