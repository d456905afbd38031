/** Input that does not fit a message: `path` names the offending field (e.g. `lead.args`). */
export class ProtoShapeError extends Error {
  readonly path: string;
  readonly typeName: string;

  constructor(typeName: string, path: string, problem: string) {
    super(`${typeName}${path ? `.${path}` : ""}: ${problem}`);
    this.name = "ProtoShapeError";
    this.typeName = typeName;
    this.path = path;
  }
}
