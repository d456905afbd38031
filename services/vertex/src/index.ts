export { vertexService } from "./vertex-service";
export type { VertexConfig } from "./vertex-service";
export { NodeRegistry } from "./node-registry";
