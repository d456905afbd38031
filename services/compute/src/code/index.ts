// Code-defined computations: the interface a module in config/<mode>/compute/computations/
// implements, and loading and checking those modules at start-up.
export type { CodeComputation, FieldBuilders } from "./code-computation";
export { loadCodeComputations, COMPUTATIONS_FOLDER } from "./load-computations";
export { checkCodeComputation } from "./check-module";
