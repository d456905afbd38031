// Component schemas: how every component kind declares its fields once (validation, defaults, types, docs).
export { field } from "./fields";
export type { DurationOptions } from "./fields";
export { defineKind, parseDocument, componentError, formatPath, problemsOf } from "./component-kind";
export type { ComponentKind, ComponentValue, Component, KindSpec, Problem } from "./component-kind";
export { renderComponentDocs } from "./component-docs";
export { closestWord } from "./closest-word";
