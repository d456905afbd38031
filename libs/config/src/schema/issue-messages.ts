import type * as z from "zod";
import { describeValue } from "@machina/protos";

const WORDS: Record<string, string> = {
  object: "a mapping",
  record: "a mapping",
  map: "a mapping",
  array: "a list",
  tuple: "a list",
  string: "a string",
  number: "a number",
  int: "an integer",
  bigint: "an integer",
  boolean: "true or false",
  null: "null",
};

const word = (expected: string) => WORDS[expected] ?? expected;

/**
 * The wording of every issue zod raises, in the house style of config errors ("expected X, got
 * Y"); passed as the parse-level error map, so a schema's own `error` still wins.
 */
export function issueMessage(iss: z.core.$ZodRawIssue): string | undefined {
  const input = iss.input;
  switch (iss.code) {
    case "invalid_type":
      return input === undefined ? "is required" : `expected ${word(iss.expected)}, got ${describeValue(input)}`;
    case "invalid_value": {
      const values = iss.values.map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
      return values.length === 1
        ? `expected ${JSON.stringify(iss.values[0])}, got ${describeValue(input)}`
        : `expected one of ${values.join(", ")}, got ${describeValue(input)}`;
    }
    case "too_small":
      if (iss.origin === "array" || iss.origin === "set")
        return `needs at least ${iss.minimum} item${Number(iss.minimum) === 1 ? "" : "s"}`;
      if (iss.origin === "string")
        return Number(iss.minimum) === 1 ? "must not be empty" : `must be at least ${iss.minimum} characters`;
      return `expected ${iss.inclusive ? "at least" : "more than"} ${iss.minimum}, got ${describeValue(input)}`;
    case "too_big":
      if (iss.origin === "array" || iss.origin === "set") return `allows at most ${iss.maximum} items`;
      if (iss.origin === "string") return `must be at most ${iss.maximum} characters`;
      return `expected ${iss.inclusive ? "at most" : "less than"} ${iss.maximum}, got ${describeValue(input)}`;
    case "unrecognized_keys":
      return "unknown key";
    case "invalid_union": {
      const disc = (iss as { discriminator?: string; options?: unknown[] }).discriminator;
      const options = (iss as { options?: unknown[] }).options;
      if (disc !== undefined && options !== undefined) {
        const got = input !== null && typeof input === "object" ? (input as Record<string, unknown>)[disc] : input;
        return `expected one of ${options.map(String).join(", ")}, got ${describeValue(got)}`;
      }
      return `got ${describeValue(input)}, which matches none of the accepted forms`;
    }
    case "invalid_format":
      return `${describeValue(input)} is not a valid ${iss.format}`;
    case "not_multiple_of":
      return `must be a multiple of ${iss.divisor}, got ${describeValue(input)}`;
    case "invalid_key":
      return "invalid key";
    default:
      return undefined;
  }
}
