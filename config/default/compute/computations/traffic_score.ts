// A code-defined computation (compute.get.traffic_score): how much attention a website gets now,
// from its newest clean record and the growth of its visits over a window (the built-in growth
// computation, called through ctx so its reads count as this one's). Types only are imported:
// the compute service hands the field builders to args().
import type { CodeComputation } from "@machina/compute";

interface Args {
  domain: string;
  window: "7d" | "30d" | "90d";
}

export default {
  description:
    "Traffic score of one website: visits kept by (1 − bounce_rate), scaled by the growth of visits over window " +
    "(capped at ×2 either way): args {domain, window? (7d, 30d or 90d; default 30d)}. One row {domain, visits, " +
    "bounce_rate, growth_percent, score}; a site without visits scores null",
  args: (f) =>
    f.object({
      domain: f.text().describe('The website, e.g. "example.com"'),
      window: f.oneOf(["7d", "30d", "90d"]).default("30d").describe("How far back growth is measured; default 30d"),
    }),
  async run({ domain, window }, ctx) {
    const site = await ctx.data.latest("website", { domain });
    const visits = typeof site.visits === "number" ? site.visits : null;
    // Bounces are visits that did not stay: only the rest count. An unknown rate counts nothing off.
    const bounce = typeof site.bounce_rate === "number" ? Math.min(Math.max(site.bounce_rate, 0), 1) : 0;
    const { rows } = await ctx.call("growth", { type: "website", key: { domain }, field: "visits", window });
    const percent = typeof rows[0]?.percent === "number" ? rows[0].percent : null;
    // Growth rewards a rising site without letting one spike dominate: the factor stays in [0.5, 2].
    const factor = percent === null ? 1 : Math.min(Math.max(1 + percent / 100, 0.5), 2);
    return [
      {
        domain,
        visits,
        bounce_rate: site.bounce_rate ?? null,
        growth_percent: percent,
        score: visits === null ? null : Math.round(visits * (1 - bounce) * factor),
      },
    ];
  },
} satisfies CodeComputation<Args>;
