import * as z from "zod";
import { field } from "@machina/config";
import type { JsonObject } from "@machina/protos";
import { defineComputation } from "./define";

/** `latest`: the newest merged record of one entity. */
export const latest = defineComputation("latest", {
  description: "Newest merged (clean) record of one entity: args {type, key: {<key fields>}}",
  args: field.object({
    // A name also keeps it a valid subject token for the data request below.
    type: field.name().describe('The entity type, e.g. "website"'),
    key: field.names(z.json()).describe('The entity key: its key fields and values, e.g. {"domain": "example.com"}'),
  }),
  async run({ type, key }, { data }) {
    return [await data.latest(type, key as JsonObject)];
  },
});
