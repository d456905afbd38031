// Scaling advice from measured handler time and lag (vertex.scale).
export { ScaleAdvisor } from "./scale-advisor";
export type { ScaleRule } from "./scale-advisor";
export { scaleGauges } from "./scale-gauges";
