// A small paginated HTTP API for the pagination tests: one route per pagination kind over one
// list of items, a log of every request, and faults (429s, 5xx) injected for chosen pages.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Items every route pages through, in order. */
export const ITEMS = Array.from({ length: 23 }, (_, i) => ({ id: `item-${String(i + 1).padStart(2, "0")}` }));

/** The items as the `changes` route lists them: item n was last updated on 2024-01-n (so in list order). */
export const CHANGED_ITEMS = ITEMS.map((item, i) => ({
  ...item,
  updated_at: new Date(Date.UTC(2024, 0, i + 1)).toISOString(),
}));

/** Items per page on every route. */
export const PER_PAGE = 5;

/** One request as the API saw it. */
export interface LoggedRequest {
  readonly route: string;
  /** Page position the request asked for (page number, offset, cursor or `after`), "" for none. */
  readonly at: string;
  readonly status: number;
  /** The request's query string, without the `?`. */
  readonly query: string;
}

/** A fault: the next `times` requests matching `route` and `at` get `status` (and `headers`). */
export interface Fault {
  route: string;
  at: string;
  status: number;
  times: number;
  headers?: Record<string, string>;
}

/** A running paged API. */
export interface PagedApi {
  readonly url: string;
  readonly port: number;
  readonly log: LoggedRequest[];
  readonly faults: Fault[];
  /** Requests to `route` with status 200, in order, by position. */
  served(route: string): string[];
  reset(): void;
  close(): Promise<void>;
}

const slice = (from: number) => ITEMS.slice(from, from + PER_PAGE);
const cursorOf = (index: number) => Buffer.from(`at:${index}`).toString("base64url");
const indexOf = (cursor: string | null) =>
  cursor === null ? 0 : Number(Buffer.from(cursor, "base64url").toString().slice(3));

/** Starts the API on a free port of 127.0.0.1. */
export async function startPagedApi(): Promise<PagedApi> {
  const log: LoggedRequest[] = [];
  const faults: Fault[] = [];
  let base = "";

  const route = (url: URL): { route: string; at: string; answer: () => Answer } => {
    const q = url.searchParams;
    const page = Number(q.get("page") ?? "1");
    const [, name, list] = url.pathname.split("/");
    switch (name) {
      case "page": // page numbers with the next one in the body
        return { route: name, at: String(page), answer: () => json(pageBody(page)) };
      case "page-bare": // page numbers, nothing but the items: the empty page is the end
        return { route: name, at: String(page), answer: () => json({ items: slice((page - 1) * PER_PAGE) }) };
      case "page-total": // page numbers and the page count
        return {
          route: name,
          at: String(page),
          answer: () =>
            json({ items: slice((page - 1) * PER_PAGE), meta: { pages: Math.ceil(ITEMS.length / PER_PAGE) } }),
        };
      case "forever": // always a full page and a next one
        return { route: name, at: String(page), answer: () => json({ items: slice(0), next_page: page + 1 }) };
      case "offset": {
        const offset = Number(q.get("offset") ?? "0");
        const limit = Number(q.get("limit") ?? "0");
        return {
          route: name,
          at: `${offset}+${limit}`,
          answer: () => json({ data: ITEMS.slice(offset, offset + limit), meta: { total: ITEMS.length } }),
        };
      }
      case "cursor": {
        const i = indexOf(q.get("cursor"));
        const next = i + PER_PAGE < ITEMS.length ? cursorOf(i + PER_PAGE) : null;
        return { route: name, at: String(i), answer: () => json({ items: slice(i), paging: { next } }) };
      }
      case "cursor-total": {
        // Names a next cursor forever; only the total says where the list ends.
        const i = indexOf(q.get("cursor"));
        return {
          route: name,
          at: String(i),
          answer: () => json({ items: slice(i), next: cursorOf(i + PER_PAGE), total: ITEMS.length }),
        };
      }
      case "next-url":
      case "next-url-away": {
        const after = Number(q.get("after") ?? "0");
        const more = after + PER_PAGE < ITEMS.length;
        // Relative and absolute links alternate; the `away` route points its second link at another host name.
        const host = name === "next-url-away" && after === 0 ? base.replace("127.0.0.1", "localhost") : "";
        const next = !more
          ? null
          : after % 10 === 0
            ? `${host}/${name}?after=${after + PER_PAGE}`
            : `${base}/${name}?after=${after + PER_PAGE}`;
        return { route: name, at: String(after), answer: () => json({ items: slice(after), links: { next } }) };
      }
      case "link": {
        const last = Math.ceil(ITEMS.length / PER_PAGE);
        const links = [`<${base}/link?page=1>; rel="first"`, `<${base}/link?page=${last}>; rel="last"`];
        if (page < last) links.push(`</link?page=${page + 1}>; rel="next"`);
        return {
          route: name,
          at: String(page),
          answer: () => json({ items: slice((page - 1) * PER_PAGE) }, { link: links.join(", ") }),
        };
      }
      case "header-cursor": {
        const i = indexOf(q.get("cursor"));
        const next = i + PER_PAGE < ITEMS.length ? cursorOf(i + PER_PAGE) : "";
        return { route: name, at: String(i), answer: () => json({ items: slice(i) }, { "x-next-cursor": next }) };
      }
      case "loop":
        return { route: name, at: q.get("c") ?? "", answer: () => json({ items: slice(0), next: "same" }) };
      case "changes": {
        // /changes?since=<ISO>&page=n: the items updated after `since`, oldest first, with the next page in the body
        const since = Date.parse(q.get("since") ?? "");
        const list = CHANGED_ITEMS.filter((i) => !Number.isFinite(since) || Date.parse(i.updated_at) > since);
        const from = (page - 1) * PER_PAGE;
        return {
          route: name,
          at: String(page),
          answer: () =>
            Number.isFinite(since)
              ? json({
                  items: list.slice(from, from + PER_PAGE),
                  next_page: from + PER_PAGE < list.length ? page + 1 : null,
                })
              : { status: 400, body: JSON.stringify({ error: "since must be a timestamp" }), headers: {} },
        };
      }
      case "links-list": {
        // A list of links beside the items, each with its relation (as HAL or JSON:API answers have)
        const after = Number(q.get("after") ?? "0");
        const links = [{ rel: "self", href: `/links-list?after=${after}` }];
        if (after + PER_PAGE < ITEMS.length) links.push({ rel: "next", href: `/links-list?after=${after + PER_PAGE}` });
        return { route: name, at: String(after), answer: () => json({ items: slice(after), meta: { links } }) };
      }
      case "lists": // /lists/<name>?page=n: like /page, one list per lead
        return { route: `lists/${list}`, at: String(page), answer: () => json(pageBody(page)) };
      default:
        return { route: url.pathname, at: "", answer: () => ({ status: 404, body: "{}", headers: {} }) };
    }
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", base);
    const r = route(url);
    const fault = faults.find((f) => f.times > 0 && f.route === r.route && f.at === r.at);
    let a: Answer;
    if (fault !== undefined) {
      fault.times--;
      a = { status: fault.status, body: JSON.stringify({ error: "injected" }), headers: fault.headers ?? {} };
    } else a = r.answer();
    log.push({ route: r.route, at: r.at, status: a.status, query: url.search.slice(1) });
    res.writeHead(a.status, { "content-type": "application/json", ...a.headers });
    res.end(a.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
  return {
    url: base,
    port,
    log,
    faults,
    served: (name) => log.filter((l) => l.route === name && l.status === 200).map((l) => l.at),
    reset() {
      log.length = 0;
      faults.length = 0;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string>;
}

function pageBody(page: number) {
  const last = Math.ceil(ITEMS.length / PER_PAGE);
  return { items: slice((page - 1) * PER_PAGE), next_page: page < last ? page + 1 : null };
}

function json(body: unknown, headers: Record<string, string> = {}): Answer {
  return { status: 200, body: JSON.stringify(body), headers };
}
