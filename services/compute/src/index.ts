export { computeService } from "./compute-service";
export { COMPUTATIONS, computationOf } from "./computations";
export type { Computation, ComputeDeps, ComputeResult, Paging } from "./computations";

/** Compute reads no component files: its computations are code, their args schemas are `COMPUTATIONS.get(name).args`. */
export const componentKinds = [] as const;
