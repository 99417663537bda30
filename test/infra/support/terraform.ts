/**
 * Offline Terraform for tests: parses `.tf` files with HashiCorp's HCL parser (compiled to WASM,
 * `@cdktf/hcl2json`) and evaluates the configuration-time subset of the language that the modules in
 * infra/ use — variables with their types, optional() defaults and validations, locals, outputs,
 * module calls (with for_each), templatefile() and the functions below — so a test can ask "what
 * cloud-init does this example render for node X" without a provider or a terraform binary.
 *
 * Resources and data sources have no values before apply: a reference to one evaluates to an
 * {@link Unknown} that remembers its address. Anything outside the subset throws (an unsupported
 * function, a template directive, an unknown condition), so a module that grows past what the
 * tests can evaluate fails loudly instead of being checked less. Two deliberate differences from
 * Terraform make the checks stricter: an object attribute that a variable's type does not declare
 * is an error (Terraform drops it silently), and so is any input the module does not declare.
 * test/infra/terraform-crosscheck.test.ts compares results with a real terraform where one exists.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, relative, resolve } from "node:path";

// Loaded through require with the two signatures used: the package's own typings pull in the DOM
// library, which would change BufferSource & co. for every other file of the Node type-check.
const hcl2json = createRequire(import.meta.url)("@cdktf/hcl2json") as {
  parse(filename: string, contents: string): Promise<Record<string, any>>;
  getExpressionAst(filename: string, expression: string): Promise<unknown>;
};

/** HashiCorp's HCL parser (Go, compiled to WASM): file → JSON with expressions as "${...}" strings. */
export function parseHcl(filename: string, contents: string): Promise<Record<string, any>> {
  return hcl2json.parse(filename, contents);
}

/** A value only known after apply (a resource or data source attribute). */
export class Unknown {
  constructor(
    readonly address: string,
    /** Builds the Unknown (or stubbed value) for an attribute or element of this one. */
    readonly extend: (suffix: string) => Value = (suffix) => new Unknown(`${address}${suffix}`),
  ) {}
  toString(): string {
    return `(known after apply: ${this.address})`;
  }
}

export type Value = null | string | number | boolean | Unknown | Value[] | { [key: string]: Value } | LazyModule | LazyModuleMap;

/** A module input: a value, or a thunk evaluated when the module first reads the variable. */
export type Input = Value | (() => Promise<Value>);

/** A parsed `.tf` directory: hcl2json's JSON for each file. */
export interface TfModuleSource {
  dir: string;
  files: { path: string; json: Record<string, any> }[];
}

export class TerraformError extends Error {
  override name = "TerraformError";
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** Parses one `.tf` file; throws with the parser's diagnostics on a syntax error. */
export async function parseTfFile(path: string): Promise<Record<string, any>> {
  return parseHcl(path, readFileSync(path, "utf8"));
}

/** Every `.tf` file below `root`, sorted (skipping `.terraform` and `node_modules`). */
export function findTfFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      if (name === ".terraform" || name === "node_modules") continue;
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".tf")) out.push(p);
    }
  };
  walk(root);
  return out;
}

const moduleCache = new Map<string, Promise<TfModuleSource>>();

export function loadModule(dir: string): Promise<TfModuleSource> {
  const key = resolve(dir);
  let cached = moduleCache.get(key);
  if (!cached) {
    cached = (async () => {
      const files = readdirSync(key)
        .filter((f) => f.endsWith(".tf"))
        .sort()
        .map((f) => join(key, f));
      if (files.length === 0) throw new TerraformError(`no .tf files in ${key}`);
      return { dir: key, files: await Promise.all(files.map(async (path) => ({ path, json: await parseTfFile(path) }))) };
    })();
    moduleCache.set(key, cached);
  }
  return cached;
}

/** All blocks of one kind with labels, e.g. blocks(mod, "variable") → [{ name, body, file }]. */
export function labelledBlocks(mod: TfModuleSource, kind: "variable" | "output" | "module" | "provider"): { name: string; body: Record<string, any>; file: string }[] {
  const out: { name: string; body: Record<string, any>; file: string }[] = [];
  for (const f of mod.files) {
    for (const [name, bodies] of Object.entries<any[]>(f.json[kind] ?? {})) for (const body of bodies) out.push({ name, body, file: f.path });
  }
  return out;
}

export function resourceBlocks(mod: TfModuleSource, kind: "resource" | "data" = "resource"): { type: string; name: string; body: Record<string, any>; file: string }[] {
  const out: { type: string; name: string; body: Record<string, any>; file: string }[] = [];
  for (const f of mod.files) {
    for (const [type, byName] of Object.entries<Record<string, any[]>>(f.json[kind] ?? {})) {
      for (const [name, bodies] of Object.entries(byName)) for (const body of bodies) out.push({ type, name, body, file: f.path });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Expressions

type Ast = { type: string; meta: any; children: Ast[]; range: { start: { byte: number }; end: { byte: number } } };
interface Parsed {
  ast: Ast;
  src: Buffer;
}

const astCache = new Map<string, Promise<Parsed>>();
const HEREDOC = "SY_TF_EVAL_EOT";

function parseExpr(source: string): Promise<Parsed> {
  let p = astCache.get(source);
  if (!p) {
    p = hcl2json.getExpressionAst("expr.tf", source).then((ast) => {
      if (!ast) throw new TerraformError(`cannot parse expression: ${source}`);
      return { ast: ast as unknown as Ast, src: Buffer.from(source, "utf8") };
    });
    astCache.set(source, p);
  }
  return p;
}

/**
 * hcl2json gives string attributes as template source with escapes already decoded (but `$${`
 * kept), which is what a heredoc body holds: evaluate them as one.
 */
function heredoc(text: string): string {
  if (text.split("\n").some((line) => line.trim() === HEREDOC)) throw new TerraformError("string contains the heredoc marker");
  return `<<${HEREDOC}\n${text}\n${HEREDOC}\n`;
}

function decodeQuoted(text: string): string {
  return text.replace(/\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)|\$\$\{|%%\{/gs, (m, esc: string | undefined) => {
    if (m === "$${") return "${";
    if (m === "%%{") return "%{";
    switch (esc?.[0]) {
      case "n":
        return "\n";
      case "r":
        return "\r";
      case "t":
        return "\t";
      case '"':
        return '"';
      case "\\":
        return "\\";
      case "u":
      case "U":
        return String.fromCodePoint(Number.parseInt((esc as string).slice(1), 16));
      default:
        throw new TerraformError(`unsupported escape ${m}`);
    }
  });
}

function decodeHeredoc(text: string): string {
  return text.replace(/\$\$\{/g, "${").replace(/%%\{/g, "%{");
}

/** Scope of one evaluation: variables bound by for-expressions, each/count, templatefile vars. */
type Scope = ReadonlyMap<string, Value>;
const EMPTY_SCOPE: Scope = new Map();

function isObject(v: Value): v is { [key: string]: Value } {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Unknown) && !(v instanceof LazyModule) && !(v instanceof LazyModuleMap);
}

function typeName(v: Value): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "list";
  if (v instanceof Unknown) return "unknown";
  if (isObject(v)) return "object";
  return typeof v;
}

function containsUnknown(v: Value): boolean {
  if (v instanceof Unknown) return true;
  if (Array.isArray(v)) return v.some(containsUnknown);
  if (isObject(v)) return Object.values(v).some(containsUnknown);
  return false;
}

function toStringValue(v: Value, what: string): string {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (v instanceof Unknown) return v.toString();
  throw new TerraformError(`${what}: cannot use a ${typeName(v)} as a string`);
}

function deepEqual(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i] as Value));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return deepEqual(ka, kb) && ka.every((k) => deepEqual(a[k] as Value, b[k] as Value));
  }
  return false;
}

function sortedKeys(o: { [key: string]: Value }): string[] {
  return Object.keys(o).sort();
}

/** jsonencode: Terraform sorts object keys and escapes <, > and & like Go's encoder. */
function jsonencode(v: Value): string {
  const norm = (x: Value): unknown => {
    if (x instanceof Unknown) return x.toString();
    if (Array.isArray(x)) return x.map(norm);
    if (isObject(x)) return Object.fromEntries(sortedKeys(x).map((k) => [k, norm(x[k] as Value)]));
    if (x instanceof LazyModule || x instanceof LazyModuleMap) throw new TerraformError("jsonencode of a whole module is not supported here");
    return x;
  };
  return JSON.stringify(norm(v)).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function fromJson(x: unknown): Value {
  if (Array.isArray(x)) return x.map(fromJson);
  if (typeof x === "object" && x !== null) return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, fromJson(v)]));
  return x as Value;
}

// ---------------------------------------------------------------------------------------------
// Modules

/** `module.x` of a call without for_each: its outputs, evaluated on demand. */
export class LazyModule {
  constructor(readonly instance: ModuleInstance) {}
}
/** `module.x` of a call with for_each: instances by key. */
export class LazyModuleMap {
  constructor(readonly instances: ReadonlyMap<string, ModuleInstance>) {}
}

export interface InstanceOptions {
  /** path.root; defaults to the module's own directory. */
  rootDir?: string;
  /** Address prefix for messages and Unknowns, e.g. `module.gpu_region["eu-west"]`. */
  address?: string;
  /**
   * Values for resource and data attributes, which are otherwise Unknown: called with the address
   * inside the module (e.g. `aws_secretsmanager_secret.node["eu-west-0"].arn`) and the module's
   * address; undefined keeps it Unknown. Child modules inherit it.
   */
  stub?: (address: string, module: string) => Value | undefined;
}

/**
 * One instance of a module with concrete inputs. Everything is evaluated lazily and memoized, so
 * only what a test asks for (and what that depends on) has to be within the supported subset.
 */
export class ModuleInstance {
  private readonly vars = new Map<string, Promise<Value>>();
  private readonly locals = new Map<string, Promise<Value>>();
  private readonly outputs = new Map<string, Promise<Value>>();
  private readonly modules = new Map<string, Promise<Value>>();
  private readonly localSources = new Map<string, unknown>();
  private readonly varBlocks = new Map<string, Record<string, any>>();
  private readonly outputBlocks = new Map<string, Record<string, any>>();
  private readonly moduleBlocks = new Map<string, Record<string, any>>();
  private readonly resourceTypes = new Set<string>();
  readonly rootDir: string;
  readonly address: string;
  private readonly stub: InstanceOptions["stub"];

  constructor(
    readonly source: TfModuleSource,
    private readonly inputs: Readonly<Record<string, Input>>,
    options: InstanceOptions = {},
  ) {
    this.rootDir = options.rootDir ?? source.dir;
    this.address = options.address ?? relative(process.cwd(), source.dir);
    this.stub = options.stub;
    for (const f of source.files) {
      for (const block of (f.json.locals ?? []) as Record<string, unknown>[]) {
        for (const [k, v] of Object.entries(block)) {
          if (this.localSources.has(k)) throw new TerraformError(`${this.address}: local.${k} defined twice`);
          this.localSources.set(k, v);
        }
      }
    }
    for (const { name, body } of labelledBlocks(source, "variable")) this.varBlocks.set(name, body);
    for (const { name, body } of labelledBlocks(source, "output")) this.outputBlocks.set(name, body);
    for (const { name, body } of labelledBlocks(source, "module")) this.moduleBlocks.set(name, body);
    for (const { type } of resourceBlocks(source, "resource")) this.resourceTypes.add(type);
    for (const name of Object.keys(inputs)) {
      if (!this.varBlocks.has(name)) throw new TerraformError(`${this.address}: no variable "${name}" is declared (unsupported argument)`);
    }
  }

  variable(name: string): Promise<Value> {
    let p = this.vars.get(name);
    if (!p) {
      p = this.computeVariable(name);
      this.vars.set(name, p);
    }
    return p;
  }

  /** Evaluates every variable, running its type conversion and validation blocks. */
  async validateAll(): Promise<void> {
    for (const name of this.varBlocks.keys()) await this.variable(name);
  }

  local(name: string): Promise<Value> {
    let p = this.locals.get(name);
    if (!p) {
      if (!this.localSources.has(name)) throw new TerraformError(`${this.address}: local.${name} is not defined`);
      p = this.evalValue(this.localSources.get(name), EMPTY_SCOPE, `local.${name}`);
      this.locals.set(name, p);
    }
    return p;
  }

  output(name: string): Promise<Value> {
    let p = this.outputs.get(name);
    if (!p) {
      const block = this.outputBlocks.get(name);
      if (!block) throw new TerraformError(`${this.address}: output "${name}" is not defined`);
      p = this.evalValue(block.value, EMPTY_SCOPE, `output.${name}`);
      this.outputs.set(name, p);
    }
    return p;
  }

  /** An attribute of a resource block, e.g. resource("cloudflare_worker_version", "edge", "bindings"). */
  async resourceAttribute(type: string, name: string, attribute: string, scope: Record<string, Value> = {}): Promise<Value> {
    const block = resourceBlocks(this.source).find((r) => r.type === type && r.name === name);
    if (!block) throw new TerraformError(`${this.address}: no resource ${type}.${name}`);
    if (!(attribute in block.body)) throw new TerraformError(`${this.address}: ${type}.${name} has no attribute ${attribute}`);
    return this.evalValue(block.body[attribute], new Map(Object.entries(scope)), `${type}.${name}.${attribute}`);
  }

  /** A module call's instance(s): a ModuleInstance, or a Map by for_each key. */
  async moduleCall(name: string): Promise<ModuleInstance | ReadonlyMap<string, ModuleInstance>> {
    const v = await this.module(name);
    if (v instanceof LazyModule) return v.instance;
    if (v instanceof LazyModuleMap) return v.instances;
    throw new TerraformError(`module.${name} did not evaluate to a module`);
  }

  private module(name: string): Promise<Value> {
    let p = this.modules.get(name);
    if (!p) {
      p = this.computeModule(name);
      this.modules.set(name, p);
    }
    return p;
  }

  private async computeModule(name: string): Promise<Value> {
    const block = this.moduleBlocks.get(name);
    if (!block) throw new TerraformError(`${this.address}: module "${name}" is not declared`);
    const src = block.source as string;
    if (typeof src !== "string" || !(src.startsWith("./") || src.startsWith("../"))) throw new TerraformError(`${this.address}: module "${name}": only local module sources are evaluated (got ${String(src)})`);
    const child = await loadModule(resolve(this.source.dir, src));
    const meta = new Set(["source", "version", "for_each", "count", "providers", "depends_on"]);
    // Arguments are evaluated when the child reads them, so a test pays only for what it asks.
    const build = (scope: Scope, address: string) => {
      const inputs: Record<string, Input> = {};
      for (const [k, v] of Object.entries(block)) if (!meta.has(k)) inputs[k] = () => this.evalValue(v, scope, `${address} argument ${k}`);
      return new ModuleInstance(child, inputs, { rootDir: this.rootDir, address, stub: this.stub });
    };
    if (block.count !== undefined) throw new TerraformError(`${this.address}: module "${name}": count is not supported here, use for_each`);
    if (block.for_each === undefined) return new LazyModule(build(EMPTY_SCOPE, `${this.address}.module.${name}`));
    const collection = await this.evalValue(block.for_each, EMPTY_SCOPE, `module.${name}.for_each`);
    const entries: [string, Value][] = Array.isArray(collection)
      ? collection.map((v) => [toStringValue(v, "for_each set element"), v])
      : isObject(collection)
        ? sortedKeys(collection).map((k) => [k, collection[k] as Value])
        : (() => {
            throw new TerraformError(`module.${name}.for_each must be a map or set, got ${typeName(collection)}`);
          })();
    const instances = new Map<string, ModuleInstance>();
    for (const [key, value] of entries) {
      instances.set(key, build(new Map<string, Value>([["each", { key, value }]]), `${this.address}.module.${name}[${JSON.stringify(key)}]`));
    }
    return new LazyModuleMap(instances);
  }

  private async computeVariable(name: string): Promise<Value> {
    const block = this.varBlocks.get(name);
    if (!block) throw new TerraformError(`${this.address}: var.${name} is not declared`);
    let value: Value;
    if (Object.hasOwn(this.inputs, name)) {
      const input = this.inputs[name] as Input;
      value = typeof input === "function" ? await input() : input;
    }
    else if ("default" in block) value = await this.evalValue(block.default, EMPTY_SCOPE, `var.${name} default`);
    else throw new TerraformError(`${this.address}: required variable "${name}" is not set`);
    if (value === null && block.nullable === false) throw new TerraformError(`${this.address}: var.${name} must not be null`);
    if (block.type !== undefined) value = await convertToType(value, await parseTypeExpr(block.type, this), `var.${name}`, this);
    for (const validation of (block.validation ?? []) as Record<string, any>[]) {
      const scope = new Map<string, Value>([["var", { [name]: value }]]);
      const ok = await this.evalValue(validation.condition, scope, `var.${name} validation`);
      if (ok instanceof Unknown) continue;
      if (ok !== true) throw new TerraformError(`${this.address}: invalid value for var.${name}: ${String(validation.error_message)}`);
    }
    return value;
  }

  /** Evaluates an hcl2json value: strings are template source, objects and arrays recurse. */
  async evalValue(v: unknown, scope: Scope, what: string): Promise<Value> {
    if (typeof v === "string") return this.evalTemplateString(v, scope, what);
    if (typeof v === "number" || typeof v === "boolean" || v === null) return v;
    if (Array.isArray(v)) {
      const out: Value[] = [];
      for (const [i, x] of v.entries()) out.push(await this.evalValue(x, scope, `${what}[${i}]`));
      return out;
    }
    if (typeof v === "object") {
      const out: Record<string, Value> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        const key = k.startsWith("${") ? toStringValue(await this.evalTemplateString(k, scope, `${what} key`), `${what} key`) : k;
        out[key] = await this.evalValue(x, scope, `${what}.${key}`);
      }
      return out;
    }
    throw new TerraformError(`${what}: cannot evaluate ${typeof v}`);
  }

  private async evalTemplateString(text: string, scope: Scope, what: string): Promise<Value> {
    if (!text.includes("${") && !text.includes("%{")) return decodeHeredoc(text);
    const parsed = await parseExpr(heredoc(text));
    const ast = parsed.ast;
    // A heredoc body always ends in a newline: "${x}\n" is the string form of a lone "${x}", which
    // Terraform evaluates to x itself (any type).
    if (ast.type === "template" && ast.children.length === 2 && ast.children[0]?.type !== "literalValue" && ast.children[1]?.type === "literalValue" && ast.children[1].meta.value === "\n") {
      return this.evalAst(ast.children[0] as Ast, parsed, scope, what);
    }
    const out = await this.evalAst(ast, parsed, scope, what);
    if (typeof out !== "string" || !out.endsWith("\n")) throw new TerraformError(`${what}: unexpected template result`);
    return out.slice(0, -1);
  }

  /** Evaluates an expression given as HCL source (not template source). */
  async evalExpression(source: string, scope: Scope = EMPTY_SCOPE, what = source): Promise<Value> {
    const parsed = await parseExpr(source);
    return this.evalAst(parsed.ast, parsed, scope, what);
  }

  /** @internal Evaluates one node of a parsed expression (also used for type defaults). */
  async evalAst(node: Ast, p: Parsed, scope: Scope, what: string): Promise<Value> {
    switch (node.type) {
      case "templateWrap":
        return this.evalAst(node.children[0] as Ast, p, scope, what);
      case "template": {
        const quoted = typeof node.meta?.value === "string" && node.meta.value.startsWith('"');
        let s = "";
        for (const child of node.children) {
          if (child.type === "literalValue" && child.meta.type === "string") s += quoted ? decodeQuoted(child.meta.value) : decodeHeredoc(child.meta.value);
          else if (this.slice(child, p).startsWith("%{")) {
            throw new TerraformError(`${what}: template directives (%{ }) are not supported here; use an interpolation or build the text in a local`);
          } else {
            const v = await this.evalAst(child, p, scope, what);
            if (v === null) throw new TerraformError(`${what}: cannot interpolate null into a string`);
            s += toStringValue(v, what);
          }
        }
        return s;
      }
      case "literalValue": {
        const t = node.meta.type;
        if (t === "number") return Number(node.meta.value);
        if (t === "bool") return node.meta.value === "true";
        if (t === "dynamic" && node.meta.value === "null") return null;
        if (t === "string") return decodeQuoted(node.meta.value);
        throw new TerraformError(`${what}: unsupported literal ${JSON.stringify(node.meta)}`);
      }
      case "scopeTraversal":
        return this.traverse(node.meta.traversal, scope, what);
      case "relativeTraversal": {
        const base = await this.evalAst(node.children[0] as Ast, p, scope, what);
        return this.applyTraversal(base, node.meta.traversal, node.meta.fullAccessor, what);
      }
      case "index": {
        const coll = await this.evalAst(node.children[0] as Ast, p, scope, what);
        const key = await this.evalAst(node.children[1] as Ast, p, scope, what);
        return this.index(coll, key, what);
      }
      case "splat": {
        const base = await this.evalAst(node.children[0] as Ast, p, scope, what);
        const each = node.children[1] as Ast;
        const items = base === null ? [] : Array.isArray(base) ? base : [base];
        const out: Value[] = [];
        for (const item of items) out.push(each && each.type === "relativeTraversal" ? await this.applyTraversal(item, each.meta.traversal, each.meta.fullAccessor, what) : item);
        return out;
      }
      case "tuple": {
        const out: Value[] = [];
        for (const child of node.children) out.push(await this.evalAst(child, p, scope, what));
        return out;
      }
      case "object": {
        const out: Record<string, Value> = {};
        for (let i = 0; i + 1 < node.children.length; i += 2) {
          const keyNode = node.children[i] as Ast;
          const key = keyNode.children.length === 0 ? this.slice(keyNode, p) : toStringValue(await this.evalAst(keyNode.children[0] as Ast, p, scope, what), `${what} object key`);
          out[key] = await this.evalAst(node.children[i + 1] as Ast, p, scope, `${what}.${key}`);
        }
        return out;
      }
      case "conditional": {
        const [c, t, f] = node.children as [Ast, Ast, Ast];
        const cond = await this.evalAst(c, p, scope, what);
        if (cond instanceof Unknown) return new Unknown(`${what} (condition on ${cond.address})`);
        if (typeof cond !== "boolean") throw new TerraformError(`${what}: condition is a ${typeName(cond)}, not a bool`);
        const chosen = await this.evalAst(cond ? t : f, p, scope, what);
        // Both results get one type: a bool or number next to a string becomes a string.
        let other: Value | undefined;
        try {
          other = await this.evalAst(cond ? f : t, p, scope, what);
        } catch {
          other = undefined;
        }
        if ((typeof chosen === "boolean" || typeof chosen === "number") && typeof other === "string") return toStringValue(chosen, what);
        return chosen;
      }
      case "binaryOp":
        return this.binary(node, p, scope, what);
      case "unaryOp": {
        const v = await this.evalAst(node.children[0] as Ast, p, scope, what);
        if (v instanceof Unknown) return v;
        if (node.meta.operator === "logicalNot") {
          if (typeof v !== "boolean") throw new TerraformError(`${what}: ! needs a bool`);
          return !v;
        }
        if (node.meta.operator === "negate") return -toNumber(v, what);
        throw new TerraformError(`${what}: unsupported operator ${node.meta.operator}`);
      }
      case "for":
        return this.forExpr(node, p, scope, what);
      case "function":
        return this.call(node, p, scope, what);
      default:
        throw new TerraformError(`${what}: unsupported expression type "${node.type}" in ${this.slice(node, p)}`);
    }
  }

  /** A resource or data attribute: the test's stub for it, or an Unknown that extends the same way. */
  private unknown(local: string): Value {
    const stubbed = this.stub?.(local, this.address);
    if (stubbed !== undefined) return stubbed;
    return new Unknown(`${this.address}.${local}`, (suffix) => this.unknown(`${local}${suffix}`));
  }

  private slice(node: Ast, p: Parsed): string {
    return p.src.subarray(node.range.start.byte, node.range.end.byte).toString("utf8");
  }

  private async binary(node: Ast, p: Parsed, scope: Scope, what: string): Promise<Value> {
    const op = node.meta.operator as string;
    const a = await this.evalAst(node.children[0] as Ast, p, scope, what);
    if (op === "logicalAnd" && a === false) return false;
    if (op === "logicalOr" && a === true) return true;
    const b = await this.evalAst(node.children[1] as Ast, p, scope, what);
    if (a instanceof Unknown || b instanceof Unknown) return new Unknown(`${what} (${op})`);
    switch (op) {
      case "equal":
        return deepEqual(a, b);
      case "notEqual":
        return !deepEqual(a, b);
      case "logicalAnd":
      case "logicalOr":
        if (typeof a !== "boolean" || typeof b !== "boolean") throw new TerraformError(`${what}: ${op} needs bools`);
        return op === "logicalAnd" ? a && b : a || b;
      case "lessThan":
        return toNumber(a, what) < toNumber(b, what);
      case "lessThanOrEqual":
        return toNumber(a, what) <= toNumber(b, what);
      case "greaterThan":
        return toNumber(a, what) > toNumber(b, what);
      case "greaterThanOrEqual":
        return toNumber(a, what) >= toNumber(b, what);
      case "add":
        return toNumber(a, what) + toNumber(b, what);
      case "subtract":
        return toNumber(a, what) - toNumber(b, what);
      case "multiply":
        return toNumber(a, what) * toNumber(b, what);
      case "divide":
        return toNumber(a, what) / toNumber(b, what);
      case "modulo":
        return toNumber(a, what) % toNumber(b, what);
      default:
        throw new TerraformError(`${what}: unsupported operator ${op}`);
    }
  }

  private async forExpr(node: Ast, p: Parsed, scope: Scope, what: string): Promise<Value> {
    const m = node.meta;
    const kids = node.children;
    let i = 0;
    const collNode = kids[i++] as Ast;
    const keyNode = m.keyExpression ? (kids[i++] as Ast) : undefined;
    const valNode = kids[i++] as Ast;
    const condNode = m.conditionalExpression ? (kids[i++] as Ast) : undefined;
    const coll = await this.evalAst(collNode, p, scope, what);
    if (coll instanceof Unknown) return new Unknown(`${what} (for over ${coll.address})`);
    const items: [Value, Value][] = Array.isArray(coll)
      ? coll.map((v, idx) => [idx, v])
      : isObject(coll)
        ? sortedKeys(coll).map((k) => [k, coll[k] as Value])
        : (() => {
            throw new TerraformError(`${what}: cannot iterate over ${typeName(coll)}`);
          })();
    const list: Value[] = [];
    const obj: Record<string, Value> = {};
    const grouped: Record<string, Value[]> = {};
    for (const [k, v] of items) {
      const inner = new Map(scope);
      if (m.keyVar) inner.set(m.keyVar, k);
      inner.set(m.valVar, v);
      if (condNode) {
        const c = await this.evalAst(condNode, p, inner, what);
        if (c instanceof Unknown) return new Unknown(`${what} (filter on ${c.address})`);
        if (typeof c !== "boolean") throw new TerraformError(`${what}: for filter must be a bool`);
        if (!c) continue;
      }
      const value = await this.evalAst(valNode, p, inner, what);
      if (!keyNode) {
        list.push(value);
        continue;
      }
      const key = toStringValue(await this.evalAst(keyNode, p, inner, what), `${what} key`);
      if (m.groupedValue) (grouped[key] ??= []).push(value);
      else {
        if (Object.hasOwn(obj, key)) throw new TerraformError(`${what}: duplicate key "${key}" in for expression`);
        obj[key] = value;
      }
    }
    if (!keyNode) return list;
    return m.groupedValue ? grouped : obj;
  }

  private async traverse(parts: { type: string; segment: string }[], scope: Scope, what: string): Promise<Value> {
    const [first, ...rest] = parts;
    if (!first) throw new TerraformError(`${what}: empty reference`);
    const root = first.segment;
    const attr = (i: number) => (rest[i]?.type === "nameTraversal" ? rest[i].segment : undefined);
    const address = () => [root, ...rest.map((r) => (r.type === "nameTraversal" ? `.${r.segment}` : `[${r.segment}]`))].join("");
    if (scope.has(root)) return this.applyTraversal(scope.get(root) as Value, rest, address(), what);
    if (scope.has(TEMPLATE_ONLY)) throw new TerraformError(`${what}: ${address()} is not one of the template's variables`);
    switch (root) {
      case "var": {
        const name = attr(0);
        if (!name) throw new TerraformError(`${what}: bad reference ${address()}`);
        return this.applyTraversal(await this.variable(name), rest.slice(1), address(), what);
      }
      case "local": {
        const name = attr(0);
        if (!name) throw new TerraformError(`${what}: bad reference ${address()}`);
        return this.applyTraversal(await this.local(name), rest.slice(1), address(), what);
      }
      case "module": {
        const name = attr(0);
        if (!name) throw new TerraformError(`${what}: bad reference ${address()}`);
        return this.applyTraversal(await this.module(name), rest.slice(1), address(), what);
      }
      case "path": {
        const which = attr(0);
        const v = which === "module" ? this.source.dir : which === "root" ? this.rootDir : which === "cwd" ? process.cwd() : undefined;
        if (v === undefined) throw new TerraformError(`${what}: unsupported ${address()}`);
        return this.applyTraversal(v, rest.slice(1), address(), what);
      }
      case "terraform":
        if (attr(0) === "workspace") return "default";
        throw new TerraformError(`${what}: unsupported ${address()}`);
      case "data":
      default:
        if (root === "data" || this.resourceTypes.has(root)) {
          // Resolve as far as the traversal goes, so a stub can match the whole address.
          let v = this.unknown(root);
          for (const part of rest) v = await this.index(v, part.type === "nameTraversal" ? part.segment : traversalKey(part.segment), what, part.type === "nameTraversal");
          return v;
        }
        throw new TerraformError(`${what}: unknown reference ${address()}`);
    }
  }

  private async applyTraversal(base: Value, parts: { type: string; segment: string }[], address: string, what: string): Promise<Value> {
    let v = base;
    for (const part of parts) {
      const attr = part.type === "nameTraversal";
      v = await this.index(v, attr ? part.segment : traversalKey(part.segment), `${what} (${address})`, attr);
    }
    return v;
  }

  private async index(coll: Value, key: Value, what: string, attribute = false): Promise<Value> {
    if (coll instanceof Unknown) return coll.extend(attribute ? `.${String(key)}` : `[${JSON.stringify(key)}]`);
    if (key instanceof Unknown) return new Unknown(`${what}[${key.address}]`);
    if (coll instanceof LazyModule) return coll.instance.output(toStringValue(key, what));
    if (coll instanceof LazyModuleMap) {
      const inst = coll.instances.get(toStringValue(key, what));
      if (!inst) throw new TerraformError(`${what}: no module instance ${JSON.stringify(key)}`);
      return new LazyModule(inst);
    }
    if (Array.isArray(coll)) {
      const i = toNumber(key, what);
      if (!Number.isInteger(i) || i < 0 || i >= coll.length) throw new TerraformError(`${what}: index ${i} out of range (length ${coll.length})`);
      return coll[i] as Value;
    }
    if (isObject(coll)) {
      const k = toStringValue(key, what);
      if (!Object.hasOwn(coll, k)) throw new TerraformError(`${what}: no attribute or key "${k}"`);
      return coll[k] as Value;
    }
    throw new TerraformError(`${what}: cannot index a ${typeName(coll)} with ${JSON.stringify(key)}`);
  }

  private async call(node: Ast, p: Parsed, scope: Scope, what: string): Promise<Value> {
    const name = node.meta.name as string;
    const argNodes = node.children;
    // try() and can() evaluate their arguments themselves: an error there is a value, not a failure.
    if (name === "try") {
      for (const a of argNodes) {
        try {
          return await this.evalAst(a, p, scope, what);
        } catch (err) {
          if (!(err instanceof TerraformError)) throw err;
        }
      }
      throw new TerraformError(`${what}: no argument of try() succeeded`);
    }
    if (name === "can") {
      try {
        await this.evalAst(argNodes[0] as Ast, p, scope, what);
        return true;
      } catch (err) {
        if (!(err instanceof TerraformError)) throw err;
        return false;
      }
    }
    let args: Value[] = [];
    for (const a of argNodes) args.push(await this.evalAst(a, p, scope, what));
    if (node.meta.expandedFinalArgument) {
      const last = args.pop();
      if (!Array.isArray(last)) throw new TerraformError(`${what}: ... needs a list`);
      args = [...args, ...last];
    }
    if (name === "templatefile") return this.templatefile(args, what);
    const fn = FUNCTIONS[name];
    if (!fn) throw new TerraformError(`${what}: function ${name}() is not supported by the offline evaluator (test/infra/support/terraform.ts)`);
    const unknownOk = name === "jsonencode" || name === "length" || name === "keys" || name === "concat" || name === "merge" || name === "tolist" || name === "compact" || name === "flatten";
    if (!unknownOk && args.some(containsUnknown)) return new Unknown(`${what} (${name} of unknown)`);
    return fn(args, what, this);
  }

  private async templatefile(args: Value[], what: string): Promise<Value> {
    const [path, vars] = args;
    if (typeof path !== "string" || !isObject(vars ?? null)) throw new TerraformError(`${what}: templatefile(path, vars)`);
    const text = readFileSync(path, "utf8");
    if (/(^|[^%])%\{/.test(text)) throw new TerraformError(`${what}: ${basename(path)} uses template directives (%{ }), which the offline evaluator does not support`);
    const scope = new Map<string, Value>([...Object.entries(vars as Record<string, Value>), [TEMPLATE_ONLY, true]]);
    const parsed = await parseExpr(heredoc(text));
    const out = await this.evalAst(parsed.ast, parsed, scope, `${what} (${basename(path)})`);
    if (typeof out !== "string") return out;
    return out.slice(0, -1);
  }
}

function traversalKey(segment: string): Value {
  return segment.startsWith('"') ? decodeQuoted(segment.slice(1, -1)) : Number(segment);
}

/** Marks a scope as a template's: only its own variables are visible, as in Terraform. */
const TEMPLATE_ONLY = "\u0000template";

function toNumber(v: Value, what: string): number {
  if (typeof v === "number") return v;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  throw new TerraformError(`${what}: ${JSON.stringify(v)} is not a number`);
}

function asList(v: Value, what: string): Value[] {
  if (Array.isArray(v)) return v;
  throw new TerraformError(`${what}: expected a list, got ${typeName(v)}`);
}
function asObject(v: Value, what: string): { [key: string]: Value } {
  if (isObject(v)) return v;
  throw new TerraformError(`${what}: expected a map or object, got ${typeName(v)}`);
}
function asString(v: Value, what: string): string {
  if (typeof v === "string") return v;
  return toStringValue(v, what);
}

/** RE2 syntax is close enough to JavaScript's for the patterns used here; named groups differ. */
function re(pattern: string, what: string, flags = ""): RegExp {
  try {
    return new RegExp(pattern.replace(/\(\?P</g, "(?<"), flags);
  } catch (err) {
    throw new TerraformError(`${what}: bad regex ${pattern}: ${(err as Error).message}`);
  }
}

type Fn = (args: Value[], what: string, mod: ModuleInstance) => Value;

const FUNCTIONS: Record<string, Fn> = {
  jsonencode: ([v]) => jsonencode(v as Value),
  jsondecode: ([s], what) => fromJson(JSON.parse(asString(s as Value, what))),
  base64encode: ([s], what) => Buffer.from(asString(s as Value, what), "utf8").toString("base64"),
  base64decode: ([s], what) => Buffer.from(asString(s as Value, what), "base64").toString("utf8"),
  sha1: ([s], what) => createHash("sha1").update(asString(s as Value, what)).digest("hex"),
  sha256: ([s], what) => createHash("sha256").update(asString(s as Value, what)).digest("hex"),
  file: ([pth], what) => readFileSync(asString(pth as Value, what), "utf8"),
  fileexists: ([pth], what) => existsSync(asString(pth as Value, what)) && statSync(asString(pth as Value, what)).isFile(),
  filesha1: ([pth], what) => createHash("sha1").update(readFileSync(asString(pth as Value, what))).digest("hex"),
  filesha256: ([pth], what) => createHash("sha256").update(readFileSync(asString(pth as Value, what))).digest("hex"),
  fileset: ([dir, pattern], what) => {
    const root = asString(dir as Value, what);
    const pat = asString(pattern as Value, what);
    if (!/^[^/*]*\*[^/*]*$/.test(pat)) throw new TerraformError(`${what}: fileset pattern ${pat} is not supported (one * in a file name)`);
    if (!existsSync(root)) return [];
    const rx = new RegExp(`^${pat.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace("\\*", ".*").replace("*", "[^/]*")}$`);
    return readdirSync(root)
      .filter((f) => rx.test(f) && statSync(join(root, f)).isFile())
      .sort();
  },
  abspath: ([pth], what) => resolve(asString(pth as Value, what)),
  dirname: ([pth], what) => dirname(asString(pth as Value, what)),
  basename: ([pth], what) => basename(asString(pth as Value, what)),
  merge: (args, what) => {
    const out: Record<string, Value> = {};
    for (const a of args) {
      if (a === null) continue;
      Object.assign(out, asObject(a, what));
    }
    return out;
  },
  concat: (args, what) => args.flatMap((a) => asList(a, what)),
  flatten: ([l], what) => {
    const flat = (x: Value[]): Value[] => x.flatMap((e) => (Array.isArray(e) ? flat(e) : [e]));
    return flat(asList(l as Value, what));
  },
  join: ([sep, list], what) => asList(list as Value, what).map((x) => asString(x, what)).join(asString(sep as Value, what)),
  split: ([sep, s], what) => asString(s as Value, what).split(asString(sep as Value, what)),
  replace: ([s, search, repl], what) => {
    const str = asString(s as Value, what);
    const find = asString(search as Value, what);
    const r = asString(repl as Value, what);
    if (find.length > 1 && find.startsWith("/") && find.endsWith("/")) return str.replace(re(find.slice(1, -1), what, "g"), r.replace(/\$\{(\w+)\}|\$(\d+)/g, "$$$1$2"));
    return str.split(find).join(r);
  },
  upper: ([s], what) => asString(s as Value, what).toUpperCase(),
  lower: ([s], what) => asString(s as Value, what).toLowerCase(),
  trimspace: ([s], what) => asString(s as Value, what).trim(),
  trimsuffix: ([s, x], what) => {
    const str = asString(s as Value, what);
    const suf = asString(x as Value, what);
    return suf && str.endsWith(suf) ? str.slice(0, -suf.length) : str;
  },
  trimprefix: ([s, x], what) => {
    const str = asString(s as Value, what);
    const pre = asString(x as Value, what);
    return pre && str.startsWith(pre) ? str.slice(pre.length) : str;
  },
  startswith: ([s, x], what) => asString(s as Value, what).startsWith(asString(x as Value, what)),
  endswith: ([s, x], what) => asString(s as Value, what).endsWith(asString(x as Value, what)),
  substr: ([s, off, len], what) => {
    const str = [...asString(s as Value, what)];
    const o = toNumber(off as Value, what);
    const l = toNumber(len as Value, what);
    return str.slice(o, l < 0 ? undefined : o + l).join("");
  },
  format: (args, what) => {
    const [fmt, ...rest] = args;
    let i = 0;
    return asString(fmt as Value, what).replace(/%(-?0?\d*)([sdqv%])/g, (_m, width: string, verb: string) => {
      if (verb === "%") return "%";
      const v = rest[i++] as Value;
      let s = verb === "d" ? String(Math.trunc(toNumber(v, what))) : verb === "q" ? JSON.stringify(asString(v, what)) : asString(v, what);
      const w = Number(width.replace("-", "").replace(/^0/, "") || 0);
      if (s.length < w) s = width.startsWith("-") ? s.padEnd(w) : s.padStart(w, width.startsWith("0") ? "0" : " ");
      return s;
    });
  },
  length: ([v], what) => {
    if (typeof v === "string") return [...v].length;
    if (Array.isArray(v)) return v.length;
    if (isObject(v as Value)) return Object.keys(v as object).length;
    if (v instanceof Unknown) return new Unknown(`length(${v.address})`);
    throw new TerraformError(`${what}: length of ${typeName(v as Value)}`);
  },
  keys: ([v], what) => sortedKeys(asObject(v as Value, what)),
  values: ([v], what) => {
    const o = asObject(v as Value, what);
    return sortedKeys(o).map((k) => o[k] as Value);
  },
  lookup: ([m, k, d], what) => {
    const o = asObject(m as Value, what);
    const key = asString(k as Value, what);
    if (Object.hasOwn(o, key)) return o[key] as Value;
    if (d === undefined) throw new TerraformError(`${what}: lookup found no key ${key}`);
    return d;
  },
  coalesce: (args, what) => {
    for (const a of args) if (a !== null && a !== "") return a;
    throw new TerraformError(`${what}: coalesce found no non-null, non-empty argument`);
  },
  coalescelist: (args, what) => {
    for (const a of args) if (asList(a, what).length > 0) return a;
    throw new TerraformError(`${what}: coalescelist found no non-empty list`);
  },
  contains: ([l, v], what) => asList(l as Value, what).some((x) => deepEqual(x, v as Value)),
  index: ([l, v], what) => {
    const i = asList(l as Value, what).findIndex((x) => deepEqual(x, v as Value));
    if (i < 0) throw new TerraformError(`${what}: index: ${JSON.stringify(v)} is not in the list`);
    return i;
  },
  element: ([l, i], what) => {
    const list = asList(l as Value, what);
    if (list.length === 0) throw new TerraformError(`${what}: element of an empty list`);
    return list[toNumber(i as Value, what) % list.length] as Value;
  },
  slice: ([l, a, b], what) => {
    const list = asList(l as Value, what);
    const start = toNumber(a as Value, what);
    const end = toNumber(b as Value, what);
    if (start < 0 || end > list.length || start > end) throw new TerraformError(`${what}: slice(${start}, ${end}) out of range for length ${list.length}`);
    return list.slice(start, end);
  },
  range: (args, what) => {
    const n = args.map((a) => toNumber(a, what));
    const [start, end, step] = n.length === 1 ? [0, n[0] as number, 1] : [n[0] as number, n[1] as number, n[2] ?? 1];
    const out: number[] = [];
    for (let x = start; step > 0 ? x < end : x > end; x += step) out.push(x);
    return out;
  },
  distinct: ([l], what) => {
    const out: Value[] = [];
    for (const x of asList(l as Value, what)) if (!out.some((y) => deepEqual(x, y))) out.push(x);
    return out;
  },
  sort: ([l], what) => [...asList(l as Value, what)].map((x) => asString(x, what)).sort(),
  reverse: ([l], what) => [...asList(l as Value, what)].reverse(),
  compact: ([l], what) => asList(l as Value, what).filter((x) => x !== null && x !== ""),
  zipmap: ([k, v], what) => {
    const ks = asList(k as Value, what);
    const vs = asList(v as Value, what);
    return Object.fromEntries(ks.map((key, i) => [asString(key, what), vs[i] as Value]));
  },
  one: ([l], what) => {
    const list = asList(l as Value, what);
    if (list.length > 1) throw new TerraformError(`${what}: one() of ${list.length} elements`);
    return list[0] ?? null;
  },
  alltrue: ([l], what) => asList(l as Value, what).every((x) => x === true || x === "true"),
  anytrue: ([l], what) => asList(l as Value, what).some((x) => x === true || x === "true"),
  max: (args, what) => Math.max(...args.map((a) => toNumber(a, what))),
  min: (args, what) => Math.min(...args.map((a) => toNumber(a, what))),
  abs: ([n], what) => Math.abs(toNumber(n as Value, what)),
  floor: ([n], what) => Math.floor(toNumber(n as Value, what)),
  ceil: ([n], what) => Math.ceil(toNumber(n as Value, what)),
  tostring: ([v], what) => (v === null ? null : toStringValue(v as Value, what)),
  tonumber: ([v], what) => (v === null ? null : toNumber(v as Value, what)),
  tobool: ([v], what) => {
    if (v === null || typeof v === "boolean") return v;
    if (v === "true" || v === "false") return v === "true";
    throw new TerraformError(`${what}: tobool(${JSON.stringify(v)})`);
  },
  tolist: ([v], what) => asList(v as Value, what),
  toset: ([v], what) => {
    const out: Value[] = [];
    for (const x of asList(v as Value, what)) if (!out.some((y) => deepEqual(x, y))) out.push(x);
    return out.every((x) => typeof x === "string") ? (out as string[]).sort() : out;
  },
  tomap: ([v], what) => asObject(v as Value, what),
  regex: ([pattern, s], what) => {
    const m = re(asString(pattern as Value, what), what).exec(asString(s as Value, what));
    if (!m) throw new TerraformError(`${what}: regex did not match`);
    if (m.groups) return { ...m.groups } as Record<string, Value>;
    return m.length > 1 ? m.slice(1).map((x) => x ?? null) : m[0];
  },
  regexall: ([pattern, s], what) => [...asString(s as Value, what).matchAll(re(asString(pattern as Value, what), what, "g"))].map((m) => (m.length > 1 ? m.slice(1).map((x) => x ?? null) : m[0])),
  sensitive: ([v]) => v as Value,
  nonsensitive: ([v]) => v as Value,
  chomp: ([s], what) => asString(s as Value, what).replace(/(\r?\n)+$/, ""),
  indent: ([n, s], what) => asString(s as Value, what).replace(/\n/g, `\n${" ".repeat(toNumber(n as Value, what))}`),
};

// ---------------------------------------------------------------------------------------------
// Types

type TfType =
  | { kind: "any" | "string" | "number" | "bool" }
  | { kind: "list" | "set" | "map"; element: TfType }
  | { kind: "tuple"; elements: TfType[] }
  | { kind: "object"; attributes: Record<string, { type: TfType; optional: boolean; default?: Value }> };

async function parseTypeExpr(typeSource: unknown, mod: ModuleInstance): Promise<TfType> {
  if (typeof typeSource !== "string") throw new TerraformError(`bad type ${JSON.stringify(typeSource)}`);
  const source = typeSource.startsWith("${") && typeSource.endsWith("}") ? typeSource.slice(2, -1) : typeSource;
  const parsed = await parseExpr(source);
  return typeFromAst(parsed.ast, parsed, mod);
}

async function typeFromAst(node: Ast, p: Parsed, mod: ModuleInstance): Promise<TfType> {
  if (node.type === "scopeTraversal" && node.meta.traversal.length === 1) {
    const k = node.meta.traversal[0].segment as string;
    if (k === "any" || k === "string" || k === "number" || k === "bool") return { kind: k };
  }
  if (node.type === "function") {
    const name = node.meta.name as string;
    const [a] = node.children as Ast[];
    if ((name === "list" || name === "set" || name === "map") && a) return { kind: name, element: await typeFromAst(a, p, mod) };
    if (name === "tuple" && a?.type === "tuple") return { kind: "tuple", elements: await Promise.all(a.children.map((c) => typeFromAst(c, p, mod))) };
    if (name === "object" && a?.type === "object") {
      const attributes: Record<string, { type: TfType; optional: boolean; default?: Value }> = {};
      for (let i = 0; i + 1 < a.children.length; i += 2) {
        const keyNode = a.children[i] as Ast;
        const key = p.src.subarray(keyNode.range.start.byte, keyNode.range.end.byte).toString("utf8");
        const t = a.children[i + 1] as Ast;
        if (t.type === "function" && t.meta.name === "optional") {
          const [inner, dflt] = t.children as Ast[];
          const type = await typeFromAst(inner as Ast, p, mod);
          attributes[key] = dflt ? { type, optional: true, default: await mod.evalAst(dflt, p, EMPTY_SCOPE, `optional(${key}) default`) } : { type, optional: true };
        } else attributes[key] = { type: await typeFromAst(t, p, mod), optional: false };
      }
      return { kind: "object", attributes };
    }
  }
  throw new TerraformError(`unsupported type expression ${p.src.subarray(node.range.start.byte, node.range.end.byte).toString("utf8")}`);
}

async function convertToType(v: Value, t: TfType, what: string, mod: ModuleInstance): Promise<Value> {
  if (v === null || v instanceof Unknown || t.kind === "any") return v;
  switch (t.kind) {
    case "string":
      if (typeof v === "string") return v;
      if (typeof v === "number" || typeof v === "boolean") return String(v);
      break;
    case "number":
      if (typeof v === "number") return v;
      if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
      break;
    case "bool":
      if (typeof v === "boolean") return v;
      if (v === "true" || v === "false") return v === "true";
      break;
    case "list":
    case "set":
      if (Array.isArray(v)) {
        const out: Value[] = [];
        for (const [i, x] of v.entries()) out.push(await convertToType(x, t.element, `${what}[${i}]`, mod));
        return out;
      }
      break;
    case "tuple":
      if (Array.isArray(v) && v.length === t.elements.length) {
        const out: Value[] = [];
        for (const [i, x] of v.entries()) out.push(await convertToType(x, t.elements[i] as TfType, `${what}[${i}]`, mod));
        return out;
      }
      break;
    case "map":
      if (isObject(v)) {
        const out: Record<string, Value> = {};
        for (const k of Object.keys(v)) out[k] = await convertToType(v[k] as Value, t.element, `${what}["${k}"]`, mod);
        return out;
      }
      break;
    case "object":
      if (isObject(v)) {
        for (const k of Object.keys(v)) if (!(k in t.attributes)) throw new TerraformError(`${what}: attribute "${k}" is not in the variable's type (Terraform would drop it silently)`);
        const out: Record<string, Value> = {};
        for (const [k, a] of Object.entries(t.attributes)) {
          const given = Object.hasOwn(v, k) ? (v[k] as Value) : undefined;
          if (given === undefined && !a.optional) throw new TerraformError(`${what}: attribute "${k}" is required`);
          const raw = given === undefined || given === null ? (a.optional ? (a.default ?? null) : null) : given;
          out[k] = await convertToType(raw, a.type, `${what}.${k}`, mod);
        }
        return out;
      }
      break;
  }
  throw new TerraformError(`${what}: a ${typeName(v)} is not a ${t.kind}`);
}

// ---------------------------------------------------------------------------------------------
// Helpers for tests

/** Instantiates the module in `dir` with inputs; `rootDir` sets path.root (defaults to dir). */
export async function instantiate(dir: string, inputs: Record<string, Input>, options: InstanceOptions = {}): Promise<ModuleInstance> {
  return new ModuleInstance(await loadModule(dir), inputs, { address: relative(process.cwd(), resolve(dir)) || ".", ...options });
}

/** Reads a `.tfvars`-style HCL file into values (literals only). */
export async function loadTfvars(path: string): Promise<Record<string, Value>> {
  const json = await parseTfFile(path);
  return fromJson(json) as Record<string, Value>;
}
