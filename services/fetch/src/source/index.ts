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
  PageKind,
  PageStops,
  PagePath,
  ExtractSpec,
  BodyFormat,
} from "./source-def";
export { PAGINATE_TYPES } from "./paginate-schema";
export { readPagePath, pagePathText } from "./paginate-spec";
export type { PaginateType } from "./paginate-schema";
export { compileTemplate, renderTemplate, renderValue } from "./template";
export type { Template, TemplateRef, TemplatePart, TemplateScope, RenderContext } from "./template";
export { resolveData, describeOrigin, joinData, redact } from "./secrets";
export type { DataRowValues } from "./secrets";
export type { ResolvedData } from "./secrets";
export type { PoolSpec, PoolCredentialSpec, PoolListSpec, PoolSecretSpec } from "./pool-def";
export { credentialHash, resolvePool } from "./pool-secrets";
export type { ResolvedCredential } from "./pool-secrets";
export { extractRecords, extractPage, checkExtractLeads, readPath, mergeRecords, countRecords } from "./extract";
export type { EntityRecords, ExtractedPage, ExtractOptions, RejectedRecord } from "./extract";
export { compileValuePath, readValuePath, selectItems } from "./value-path";
export type { ValuePath } from "./value-path";
export { compileJsonPath, isJsonPath } from "./json-path";
export type { JsonPathSelector } from "./json-path";
export { applyMapping, mappingLeadRefs } from "./field-mapping";
export type { FieldMap, FieldMapping, FieldSource, MappingProblem, MappingInput } from "./field-mapping";
export { coerceValue, VALUE_TYPES } from "./coerce";
export type { ValueType, Coerced } from "./coerce";
export { parseByteSize, formatByteSize } from "./byte-size";
export { CODE, CODE_MAX_PAGES, codeSpecOf } from "./code-schema";
export type { CodeSpec, LoadedCode } from "./code-schema";
