import { MachinaError } from "@machina/wire";

const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

/** Checks a paged listing's `limit` (1–1000, 0 or absent: 100) and `page` (a driver page state in hex, "" first); BAD_REQUEST naming the field. */
export function pageOptions(options: { limit?: number; page?: string }): { limit: number; page: string } {
  const limit = options.limit === undefined || options.limit === 0 ? DEFAULT_PAGE : options.limit;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw new MachinaError("BAD_REQUEST", `limit: expected a whole number from 1 to ${MAX_PAGE}, got ${limit}`, {
      details: { field: "limit" },
    });
  }
  const page = options.page ?? "";
  if (page !== "" && !/^[0-9a-f]+$/.test(page)) {
    throw new MachinaError(
      "BAD_REQUEST",
      `page: "${page.slice(0, 40)}" is not a page token; pass the "next" of the previous answer, or "" for the first page`,
      { details: { field: "page" } },
    );
  }
  return { limit, page };
}
