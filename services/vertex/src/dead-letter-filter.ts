import type { DeadLetterFilter } from "@machina/protos";
import { nameProblem } from "@machina/subjects";
import type { MeshNames } from "@machina/subjects";
import { ErrorCode, MachinaError } from "@machina/wire";
import type { StoredLetter, WorkStream } from "./dead-letter-store";

/** The filter fields a DLQ request may carry; `seqs` only on replay and purge. */
export type FilterFields = Pick<DeadLetterFilter, "code" | "subject" | "type" | "stream"> & { seqs?: number[] };

/** A validated filter over dead letters. */
export interface LetterFilter {
  /** True when no field is set: the operation covers the whole DLQ. */
  readonly all: boolean;
  /** DLQ sequences to visit instead of scanning the stream, ascending; undefined to scan. */
  readonly seqs?: number[];
  /** Whether a letter passes every set field. */
  matches(l: StoredLetter): boolean;
}

const CODES = Object.values(ErrorCode);

function bad(message: string, field: string): MachinaError {
  return new MachinaError("BAD_REQUEST", message, { details: { field }, retryable: false });
}

/** Checks a request's filter fields; BAD_REQUEST saying what to fix. */
export function parseFilter(names: MeshNames, f: FilterFields): LetterFilter {
  const code = f.code;
  if (code && !(CODES as string[]).includes(code)) {
    throw bad(`unknown error code "${code}"; use one of ${CODES.join(", ")}`, "code");
  }
  const pattern = f.subject ? parseSubjectPattern(names, f.subject) : undefined;
  if (f.type) {
    const problem = nameProblem(f.type);
    if (problem !== null) throw bad(`type: ${problem}, e.g. "website"`, "type");
  }
  const stream = f.stream ? streamNameOf(names, f.stream) : "";
  const seqs = f.seqs?.length ? [...new Set(f.seqs)].sort((a, b) => a - b) : undefined;
  if (seqs?.[0] === 0)
    throw bad("seqs: 0 is not a DLQ sequence (they start at 1); take them from dlq.list with a limit", "seqs");
  return {
    all: !code && !pattern && !f.type && !stream && !seqs,
    seqs,
    matches: (l) =>
      (!code || l.code === code) &&
      (!pattern || subjectMatches(pattern, l.subject)) &&
      (!f.type || l.type === f.type) &&
      (!stream || l.stream === stream),
  };
}

// A stream is named like the letters carry it (MACHINA_STORE), or by its key (STORE).
function streamNameOf(names: MeshNames, given: string): string {
  const keys = Object.keys(names.streams).filter((k) => k !== "DLQ") as WorkStream[];
  for (const k of keys) {
    if (given.toUpperCase() === k || given === names.streams[k]) return names.streams[k];
  }
  throw bad(
    `unknown stream "${given}"; use one of ${keys.join(", ")} or its full name (${keys.map((k) => names.streams[k]).join(", ")})`,
    "stream",
  );
}

// Splits a NATS subject pattern into tokens; BAD_REQUEST naming the mistake.
function parseSubjectPattern(names: MeshNames, pattern: string): string[] {
  const example = `e.g. "${names.streamSubjects.STORE}" or "${names.prefix}.task.*.website"`;
  if (/\s/.test(pattern))
    throw bad(
      `subject "${pattern}" contains whitespace; a NATS subject is dot-separated tokens, ${example}`,
      "subject",
    );
  const tokens = pattern.split(".");
  tokens.forEach((t, i) => {
    if (t === "")
      throw bad(`subject "${pattern}" has an empty token (a leading, trailing or double dot); ${example}`, "subject");
    if (t !== "*" && t !== ">" && /[*>]/.test(t)) {
      throw bad(
        `subject "${pattern}": wildcards must be whole tokens ("*" for one token, ">" for the rest), not part of "${t}"; ${example}`,
        "subject",
      );
    }
    if (t === ">" && i !== tokens.length - 1)
      throw bad(`subject "${pattern}": ">" may only be the last token; ${example}`, "subject");
  });
  return tokens;
}

// NATS matching: `*` is exactly one token, `>` one or more trailing tokens.
function subjectMatches(pattern: string[], subject: string): boolean {
  const s = subject.split(".");
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === ">") return s.length > i;
    if (i >= s.length || (pattern[i] !== "*" && pattern[i] !== s[i])) return false;
  }
  return pattern.length === s.length;
}
