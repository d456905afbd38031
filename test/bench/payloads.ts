// The request and reply every row of the request/reply bench carries: a realistic QueryRequest
// (source, query, lead with args), about 200 bytes as JSON, and a QueryResponse of about 300.
import type { QueryRequest, QueryResponse } from "@machina/protos";

/** The request, as a typed message (MeshClient sends it as protobuf, the JSON rows as proto3 JSON). */
export const REQUEST: QueryRequest = {
  source: "sitestats",
  query: "site",
  lead: {
    id: "example.com",
    args: { domain: "example.com", country: "us", lang: "en", page: 1, limit: 50, fresh: true },
  },
  requestId: "0f8e6b2a-4c1d-4e3b-9a57-2d6c8b1e7f40",
};

/**
 * The reply the Machina endpoint builds from a request: it echoes the request's identity and
 * carries one record. No Meta: proto3 JSON writes every Meta field, which alone would push the
 * reply past 500 bytes, and DESIGN §13's figures are for a ~300-byte reply.
 */
export function replyTo(req: QueryRequest): Partial<QueryResponse> {
  return {
    requestId: req.requestId,
    source: req.source,
    query: req.query,
    lead: { id: req.lead?.id ?? "", args: { domain: req.lead?.args?.domain ?? null } },
    data: {
      types: {
        website: {
          records: [
            { domain: "example.com", title: "Example Portal", rank: 1, visits: 1008678, category: "reference" },
          ],
        },
      },
    },
  };
}
