export { computeService } from "./compute-service";
export { COMPUTATIONS, computationOf } from "./computations";
export type { Computation, ComputeDeps } from "./computations";
