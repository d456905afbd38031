// Code-defined queries of the rankings source (see rankings.yaml): requests signed with
// HMAC-SHA256 over method, path and timestamp, cursor pagination, and v4's field names mapped to
// the website type. The fetch service sends what buildRequest returns, under the source's limiter.
import { createHmac } from "node:crypto";
import type { CodeContext, CodeRequest, CodeSource } from "@machina/fetch";

const PAGE_SIZE = 20;

// The API signs the exact path and query string it receives, so the URL is built here, whole.
function signed(ctx: CodeContext, path: string, query: Record<string, string>): CodeRequest {
  const search = new URLSearchParams(query).toString();
  const url = search === "" ? path : `${path}?${search}`;
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = createHmac("sha256", ctx.data.signing_secret).update(`GET\n${url}\n${timestamp}`).digest("hex");
  return {
    method: "GET",
    url,
    headers: { "X-Client-Id": ctx.data.client_id, "X-Timestamp": timestamp, "X-Signature": signature },
  };
}

interface RankingsPage {
  rankings: { site: string; position: number; category: string; monthly_visits: number }[];
  next_cursor: string | null;
}

function isRankingsPage(body: unknown): body is RankingsPage {
  return typeof body === "object" && body !== null && Array.isArray((body as RankingsPage).rankings);
}

export default {
  queries: {
    // Every ranked site, or those of one category when the lead gives `category`.
    top: {
      buildRequest(ctx) {
        const query: Record<string, string> = { limit: String(PAGE_SIZE) };
        if (typeof ctx.lead.args.category === "string") query.category = ctx.lead.args.category;
        if (ctx.cursor !== null) query.cursor = String(ctx.cursor);
        return signed(ctx, "/v4/rankings", query);
      },
      parseResponse(_ctx, response) {
        if (!isRankingsPage(response.body)) throw new Error("expected { rankings: [...], next_cursor }");
        const website = response.body.rankings.map((r) => ({
          domain: r.site,
          rank: r.position,
          category: r.category,
          visits: r.monthly_visits,
        }));
        return { records: { website }, next: response.body.next_cursor };
      },
    },
  },
} satisfies CodeSource;
