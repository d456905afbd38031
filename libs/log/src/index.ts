export { createRootLogger, messageLogger, silentLogger } from "./root-logger";
export type { RootLoggerOptions } from "./root-logger";
export type { Logger } from "pino";
