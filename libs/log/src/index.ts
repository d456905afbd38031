export { createRootLogger, silentLogger } from "./root-logger";
export type { RootLoggerOptions } from "./root-logger";
export type { Logger } from "pino";
