#!/usr/bin/env node
// Dependencies exact: every workspace package declares exactly what its source imports,
// and a dependency has one version range across the workspace.
//
// Usage: node tools/check-deps.mjs [repo-root]       (plain Node, no dependencies: runs before `pnpm install`)
//
// For the root package and every package matched by pnpm-workspace.yaml it collects the bare module
// specifiers imported by its .ts/.mts/.cts/.js/.mjs/.cjs files (static import/export-from, `import type`,
// `import("x")`, `require("x")`; comments and string contents are skipped), reduced to package names
// (`@scope/name/sub` -> `@scope/name`, `name/sub` -> `name`; `node:`/builtins, relative paths, `#imports`
// and the package's own name are ignored), and compares them with dependencies + devDependencies +
// peerDependencies + optionalDependencies of its package.json. The root package owns the files that are in
// no other workspace package (eslint.config.js, tools/).
//
// A declared dependency that nothing imports is still in use (no allow-list needed so far) when
//   - it is `@types/X` and X is imported, or X is `node` and a Node builtin is imported, or X is listed in
//     compilerOptions.types of a tsconfig*.json in the package's directory;
//   - one of its binaries (the `bin` names of its installed package.json; the unscoped name when it is not
//     installed) is invoked in the package's package.json scripts or shell scripts (*.sh, or a `#!` file
//     without an extension, outside node_modules), or in the repo's Makefile or .ci/ scripts, which run
//     every package's tools (e.g. `pnpm exec tsc`, `node --import tsx`, `pnpm exec eslint`).
// Exit 1 with the list of problems on stderr; otherwise print one OK line.

import { builtinModules } from "node:module";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), ".."));

// Declared dependencies that no rule above can see as used, as "<package.json path>": { "<dep>": "why" }.
// Keep it empty unless a use really is invisible to this script.
const ALLOW = {};

const SOURCE_EXT = /\.(?:ts|mts|cts|js|mjs|cjs)$/;
const DEP_FIELDS = ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"];
const BUILTINS = new Set(builtinModules.map((m) => m.replace(/^node:/, "")));
const SKIP_DIRS = new Set(["node_modules", ".git", ".machina", ".pnpm-store"]);

const rel = (p) => relative(ROOT, p).split(sep).join("/") || ".";
const readJson = (p) => JSON.parse(readFileSync(p, "utf8"));

// ---- workspace packages -------------------------------------------------------------------------

function workspaceGlobs() {
  const file = join(ROOT, "pnpm-workspace.yaml");
  if (!existsSync(file)) return [];
  const globs = [];
  let inPackages = false;
  for (const raw of readFileSync(file, "utf8").split("\n")) {
    const line = raw.replace(/\s+#.*$/, "");
    if (/^\S/.test(line)) inPackages = /^packages\s*:/.test(line);
    else if (inPackages) {
      const m = /^\s+-\s*(["']?)(.+?)\1\s*$/.exec(line);
      if (m) globs.push(m[2]);
    }
  }
  return globs;
}

function globToRegExp(glob) {
  const segs = glob.replace(/^\.\//, "").replace(/\/+$/, "").split("/");
  if (segs.length === 1 && segs[0] === "**") return /^.+$/;
  let re = "";
  let sepNext = false;
  segs.forEach((seg, idx) => {
    if (seg === "**") {
      re += idx === 0 ? "(?:[^/]+/)*" : "(?:/[^/]+)*";
      sepNext = idx !== 0;
      return;
    }
    if (sepNext) re += "/";
    re += seg
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, "[^/]*")
      .replace(/\?/g, "[^/]");
    sepNext = true;
  });
  return new RegExp(`^${re}$`);
}

function listDirs(dir, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory() || SKIP_DIRS.has(e.name) || e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    out.push(p);
    listDirs(p, out);
  }
  return out;
}

function workspacePackages() {
  const globs = workspaceGlobs();
  const include = globs.filter((g) => !g.startsWith("!")).map(globToRegExp);
  const exclude = globs.filter((g) => g.startsWith("!")).map((g) => globToRegExp(g.slice(1)));
  const dirs = listDirs(ROOT).filter((d) => {
    const r = rel(d);
    return include.some((re) => re.test(r)) && !exclude.some((re) => re.test(r)) && existsSync(join(d, "package.json"));
  });
  return [ROOT, ...dirs.sort()];
}

// ---- files of a package ---------------------------------------------------------------------------

function packageFiles(dir, otherPackages) {
  const files = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (SKIP_DIRS.has(e.name) || otherPackages.has(p)) continue;
        walk(p);
      } else if (e.isFile()) files.push(p);
    }
  };
  walk(dir);
  return files;
}

// ---- a small JS/TS lexer: enough to skip comments, strings, templates and regex literals ------------

const REGEX_AFTER_WORD = new Set(
  "return typeof instanceof in of new delete void throw case do else yield await extends".split(" "),
);

function tokenize(src) {
  const toks = [];
  const n = src.length;
  const templateDepth = []; // one counter of open `{` per `${` we are inside
  let i = 0;
  if (src.startsWith("#!")) i = src.indexOf("\n") === -1 ? n : src.indexOf("\n");

  const push = (type, value) => toks.push({ type, value });
  const regexAllowed = () => {
    const t = toks[toks.length - 1];
    if (!t) return true;
    if (t.type === "id") return REGEX_AFTER_WORD.has(t.value);
    if (t.type === "punc") return !/[)\]]/.test(t.value);
    return false;
  };
  // Scans a template chunk starting after "`" or after the "}" closing a substitution.
  const template = () => {
    let s = "";
    while (i < n) {
      const c = src[i];
      if (c === "\\") {
        s += src[i + 1] ?? "";
        i += 2;
        continue;
      }
      if (c === "`") {
        i++;
        push("tmpl-end", s);
        return;
      }
      if (c === "$" && src[i + 1] === "{") {
        i += 2;
        templateDepth.push(0);
        push("tmpl-open", s);
        return;
      }
      s += c;
      i++;
    }
  };

  while (i < n) {
    const c = src[i];
    if (c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f" || c === "\v" || c === "\uFEFF") {
      i++;
      continue;
    }
    if (c === "/" && src[i + 1] === "/") {
      const e = src.indexOf("\n", i);
      i = e === -1 ? n : e;
      continue;
    }
    if (c === "/" && src[i + 1] === "*") {
      const e = src.indexOf("*/", i + 2);
      i = e === -1 ? n : e + 2;
      continue;
    }
    if (c === '"' || c === "'") {
      let s = "";
      let j = i + 1;
      while (j < n && src[j] !== c && src[j] !== "\n") {
        if (src[j] === "\\") {
          s += src[j + 1] ?? "";
          j += 2;
        } else s += src[j++];
      }
      i = j + 1;
      push("str", s);
      continue;
    }
    if (c === "`") {
      i++;
      const before = toks.length;
      template();
      // a template without substitutions is as good as a string: import(`x`)
      if (toks.length === before + 1 && toks[before].type === "tmpl-end") toks[before].type = "str";
      continue;
    }
    if (c === "/" && regexAllowed()) {
      let j = i + 1;
      let inClass = false;
      let ok = false;
      while (j < n && src[j] !== "\n") {
        const d = src[j];
        if (d === "\\") {
          j += 2;
          continue;
        }
        if (d === "[") inClass = true;
        else if (d === "]") inClass = false;
        else if (d === "/" && !inClass) {
          ok = true;
          break;
        }
        j++;
      }
      if (ok) {
        j++;
        while (j < n && /[\w$]/.test(src[j])) j++;
        push("regex", src.slice(i, j));
        i = j;
        continue;
      }
      // not a regex after all (a division we guessed wrong): fall through to punctuation
    }
    if (/[A-Za-z_$\u0080-\uFFFF#]/.test(c)) {
      let j = i + 1;
      while (j < n && /[\w$\u0080-\uFFFF]/.test(src[j])) j++;
      push("id", src.slice(i, j));
      i = j;
      continue;
    }
    if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(src[i + 1] ?? ""))) {
      let j = i + 1;
      while (j < n && /[\w.]/.test(src[j])) j++;
      push("num", src.slice(i, j));
      i = j;
      continue;
    }
    if (templateDepth.length > 0) {
      if (c === "{") templateDepth[templateDepth.length - 1]++;
      else if (c === "}") {
        if (templateDepth[templateDepth.length - 1] === 0) {
          templateDepth.pop();
          i++;
          template();
          continue;
        }
        templateDepth[templateDepth.length - 1]--;
      }
    }
    push("punc", c);
    i++;
  }
  return toks;
}

// Module specifiers a file imports (bare or not; filtered by the caller).
function specifiers(src) {
  const toks = tokenize(src);
  const out = [];
  const is = (k, type, value) => toks[k] && toks[k].type === type && (value === undefined || toks[k].value === value);
  // After `import`/`export`, the clause (`type`, names, `{ a as b }`, `* as ns`, commas) up to `from "x"`.
  const fromClause = (k) => {
    for (; k < toks.length; k++) {
      const t = toks[k];
      if (t.type === "id" && t.value === "from" && is(k + 1, "str")) return toks[k + 1].value;
      if (t.type === "id" || t.type === "str" || (t.type === "punc" && /[{},*]/.test(t.value))) continue;
      return null;
    }
    return null;
  };
  for (let k = 0; k < toks.length; k++) {
    const t = toks[k];
    if (t.type !== "id" || is(k - 1, "punc", ".")) continue;
    if (t.value === "import") {
      if (is(k + 1, "str"))
        out.push(toks[k + 1].value); // import "x"
      else if (is(k + 1, "punc", "(") && is(k + 2, "str"))
        out.push(toks[k + 2].value); // import("x")
      else if (!is(k + 1, "punc", ".")) {
        const s = fromClause(k + 1);
        if (s !== null) out.push(s);
      }
    } else if (t.value === "export") {
      let k2 = k + 1;
      if (is(k2, "id", "type")) k2++;
      if (is(k2, "punc", "{") || is(k2, "punc", "*")) {
        const s = fromClause(k2);
        if (s !== null) out.push(s);
      }
    } else if (t.value === "require" && is(k + 1, "punc", "(") && is(k + 2, "str") && is(k + 3, "punc", ")")) {
      out.push(toks[k + 2].value);
    }
  }
  return out;
}

// "@scope/name/sub" -> "@scope/name", "name/sub" -> "name"; null for builtins, relative paths, URLs, #imports.
function packageName(spec) {
  if (!spec || spec.startsWith(".") || spec.startsWith("/") || spec.startsWith("#")) return null;
  if (/^[a-z][a-z0-9+.-]*:/i.test(spec)) return null; // node:, data:, file:, https:
  const parts = spec.split("/");
  const name = spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  if (BUILTINS.has(name) || BUILTINS.has(spec)) return null;
  return name;
}

// ---- CLI use ----------------------------------------------------------------------------------------

function binNames(dep, fromDir) {
  for (let d = fromDir; ; d = dirname(d)) {
    const pj = join(d, "node_modules", dep, "package.json");
    if (existsSync(pj)) {
      const { bin } = readJson(pj);
      if (typeof bin === "string") return [dep.replace(/^@[^/]+\//, "")];
      return bin && typeof bin === "object" ? Object.keys(bin) : [];
    }
    if (d === ROOT || dirname(d) === d) break;
  }
  return [dep.replace(/^@[^/]+\//, "")]; // not installed: guess the usual binary name
}

const stripShellComments = (text) =>
  text
    .split("\n")
    .map((l) => l.replace(/(^|\s)#.*$/, "$1"))
    .join("\n");

function isShellScript(file) {
  if (file.endsWith(".sh") || file.endsWith(".bash")) return true;
  if (/\.[^/\\]+$/.test(file.slice(dirname(file).length + 1))) return false;
  try {
    return statSync(file).size < 1 << 20 && readFileSync(file, "utf8").startsWith("#!");
  } catch {
    return false;
  }
}

function repoCommandText() {
  const parts = [];
  const makefile = join(ROOT, "Makefile");
  if (existsSync(makefile)) parts.push(readFileSync(makefile, "utf8"));
  const ci = join(ROOT, ".ci");
  if (existsSync(ci)) {
    for (const f of readdirSync(ci)) {
      const p = join(ci, f);
      if (statSync(p).isFile()) parts.push(readFileSync(p, "utf8"));
    }
  }
  return stripShellComments(parts.join("\n"));
}

// `bin` as a word of a command: `pnpm exec tsc`, `$BIN/pbjs`, `--import tsx/esm`; not `eslint.config.js`.
const invokes = (text, bin) =>
  new RegExp(`(?<![\\w.@-])${bin.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![\\w.@-])`).test(text);

// ---- the check ----------------------------------------------------------------------------------------

function main() {
  const problems = [];
  const dirs = workspacePackages();
  const dirSet = new Set(dirs);
  const repoCommands = repoCommandText();
  const ranges = new Map(); // dep -> Map(range -> [package.json])

  for (const dir of dirs) {
    const pjPath = join(dir, "package.json");
    const pjRel = rel(pjPath);
    const pj = readJson(pjPath);
    const others = new Set([...dirSet].filter((d) => d !== dir));
    const files = packageFiles(dir, others);

    const imported = new Map(); // name -> first file importing it
    let importsBuiltin = false;
    for (const f of files.filter((f) => SOURCE_EXT.test(f))) {
      for (const spec of specifiers(readFileSync(f, "utf8"))) {
        const name = packageName(spec);
        if (name === null) {
          if (spec.startsWith("node:") || BUILTINS.has(spec.split("/")[0])) importsBuiltin = true;
          continue;
        }
        if (name !== pj.name && !imported.has(name)) imported.set(name, rel(f));
      }
    }

    const declared = new Map(); // dep -> field
    for (const field of DEP_FIELDS) {
      for (const [dep, range] of Object.entries(pj[field] ?? {})) {
        if (declared.has(dep) && !(field === "peerDependencies" || declared.get(dep) === "peerDependencies")) {
          problems.push(`${pjRel}: "${dep}" is listed in both ${declared.get(dep)} and ${field}`);
        }
        if (!declared.has(dep)) declared.set(dep, field);
        if (!ranges.has(dep)) ranges.set(dep, new Map());
        const byRange = ranges.get(dep);
        if (!byRange.has(range)) byRange.set(range, []);
        if (!byRange.get(range).includes(pjRel)) byRange.get(range).push(pjRel);
      }
    }

    for (const [name, file] of imported) {
      if (!declared.has(name)) problems.push(`${pjRel}: "${name}" is imported (${file}) but not declared`);
    }

    const tsTypes = new Set();
    for (const f of readdirSync(dir)) {
      if (!/^tsconfig.*\.json$/.test(f)) continue;
      const m = /"types"\s*:\s*\[([^\]]*)\]/.exec(readFileSync(join(dir, f), "utf8"));
      if (m) for (const t of m[1].matchAll(/"([^"]+)"/g)) tsTypes.add(t[1]);
    }
    const commands = [
      Object.values(pj.scripts ?? {}).join("\n"),
      ...files.filter(isShellScript).map((f) => stripShellComments(readFileSync(f, "utf8"))),
      repoCommands,
    ].join("\n");

    for (const [dep, field] of declared) {
      if (imported.has(dep) || ALLOW[pjRel]?.[dep]) continue;
      if (dep.startsWith("@types/")) {
        const typed = dep.slice("@types/".length);
        const target = typed.includes("__") ? `@${typed.replace("__", "/")}` : typed;
        if (imported.has(target) || tsTypes.has(typed) || (typed === "node" && importsBuiltin)) continue;
      } else if (binNames(dep, dir).some((b) => invokes(commands, b))) continue;
      problems.push(`${pjRel}: "${dep}" is declared (${field}) but not imported or invoked`);
    }
  }

  for (const [dep, byRange] of [...ranges].sort(([a], [b]) => a.localeCompare(b))) {
    if (byRange.size < 2) continue;
    const list = [...byRange].map(([range, pjs]) => `"${range}" in ${pjs.join(", ")}`).join("; ");
    problems.push(`"${dep}" has ${byRange.size} version ranges (one is required): ${list}`);
  }

  if (problems.length > 0) {
    console.error(`check-deps: ${problems.length} problem(s)`);
    for (const p of problems) console.error(`  ${p}`);
    process.exit(1);
  }
  console.log(`check-deps: OK (${dirs.length} packages)`);
}

main();
