// Code-defined sources: the interface a source module implements, loading and checking it at
// start-up, and running its queries through the source's manager and shared limiter.
export type {
  CodeSource,
  CodeQuery,
  CodeContext,
  CodeRequest,
  CodeResponse,
  CodeParsed,
  PageToken,
} from "./code-source";
export { loadCodeModules } from "./load-modules";
export { checkCodeModule } from "./check-module";
export { createCodeRunner } from "./code-runner";
export type { CodeRunner } from "./code-runner";
export { toHttpRequest } from "./code-request";
export type { CodeRequestScope } from "./code-request";
export { admittedCall } from "./admitted-call";
export type { AdmittedCall, AdmittedResult } from "./admitted-call";
