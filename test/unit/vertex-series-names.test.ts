// How vertex.stats folds a series into buckets when the request names no reducer.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defaultReducer, seriesName } from "@machina/vertex";

describe("vertex series: default reducers", () => {
  it("sums counts per sample, keeps the worst percentile and the highest DLQ level, averages the rest", () => {
    assert.equal(defaultReducer(seriesName.endpoint("fetch", "fetch", "requests")), "sum");
    assert.equal(defaultReducer(seriesName.worker("data", "data-dump", "messages")), "sum");
    assert.equal(defaultReducer(seriesName.endpoint("fetch", "fetch", "p99_ms")), "max");
    // dlq.messages ends like a count but is a level: summing 12 samples of 3 letters would say 36.
    assert.equal(defaultReducer(seriesName.dlq("messages")), "max");
    assert.equal(defaultReducer(seriesName.node("fetch", "n1", "rss_bytes")), "mean");
    assert.equal(defaultReducer(seriesName.consumer("S", "d", "pending")), "mean");
  });
});
