import { defineEndpoint } from "@machina/runtime";
import type { ServiceContext, ServiceSpec } from "@machina/runtime";
import { computationOf } from "./computations";

/** The compute service (layer 4): registered computations over clean data. */
export const computeService: ServiceSpec<Record<string, never>> = {
  name: "compute",
  version: "0.1.0",
  description: "Answers registered computations over clean data",
  httpPort: 9305,
  async setup(ctx: ServiceContext<Record<string, never>>) {
    const { names, client } = ctx;
    return {
      endpoints: [
        defineEndpoint({
          name: "get",
          subject: names.any.computeGet,
          request: "ComputeRequest",
          reply: "ComputeReply",
          description: "Run the computation named by the last subject token with the given args",
          async handler(req, { subject }) {
            const [name] = names.tail(subject, 1);
            const { rows, next } = await computationOf(name).run(
              req.args ?? {},
              { client, names },
              { limit: req.limit, page: req.page },
            );
            return { name, rows, cached: false, next };
          },
        }),
      ],
    };
  },
};
