// Source definitions: the fetch/sources kind, its compiled form, templates, secrets and record extraction.
export { SOURCE_KIND, METHODS } from "./source-kind";
export { compileSource, splitPath, authTemplates } from "./source-def";
export type {
  SourceDef,
  QueryDef,
  LimiterSpec,
  RateWindow,
  DataSpec,
  AuthSpec,
  OAuth2Spec,
  RetrySpec,
  ManagerSpec,
  BodyNode,
  PaginateSpec,
  ExtractSpec,
} from "./source-def";
export { compileTemplate, renderTemplate, renderValue } from "./template";
export type { Template, TemplateRef, TemplatePart, TemplateScope, RenderContext } from "./template";
export { resolveData, describeOrigin, redact } from "./secrets";
export type { ResolvedData } from "./secrets";
export { extractRecords, readPath, mergeRecords, countRecords } from "./extract";
export type { EntityRecords } from "./extract";
