/**
 * Every Terraform file in infra/ parses with HashiCorp's HCL parser, every variable says what it is
 * (type and description), every output is described, and every module call matches the module it
 * calls: no argument the module does not declare, no required variable left out.
 */
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { findTfFiles, labelledBlocks, loadModule, parseHcl, parseTfFile } from "./support/terraform";

const INFRA = resolve(import.meta.dirname, "../../infra");
const files = findTfFiles(INFRA);
const moduleDirs = [...new Set(files.map((f) => dirname(f)))];
const name = (p: string) => relative(INFRA, p);

describe("infra/ Terraform files", () => {
  it("finds the edge, gpu-region and node-bootstrap modules and the two-regions example", () => {
    expect(moduleDirs.map(name).sort()).toEqual(["examples/two-regions", "modules/edge", "modules/gpu-region", "modules/node-bootstrap"]);
  });

  it.each(files.map((f) => [name(f), f]))("%s parses", async (_n, path) => {
    const json = await parseTfFile(path);
    expect(Object.keys(json).length, "a file with no blocks").toBeGreaterThan(0);
  });

  it("the parser refuses broken HCL (the checks above can fail)", async () => {
    const broken = join(INFRA, "modules/edge/variables.tf");
    const text = readFileSync(broken, "utf8").replace('variable "account_id" {', 'variable "account_id" {{');
    await expect(parseHcl("broken.tf", text)).rejects.toThrow();
  });

  describe.each(moduleDirs.map((d) => [name(d), d]))("%s", (_n, dir) => {
    it("declares every variable with a type and a description", async () => {
      const mod = await loadModule(dir);
      const vars = labelledBlocks(mod, "variable");
      expect(vars.length).toBeGreaterThan(0);
      for (const v of vars) {
        expect(v.body.type, `variable "${v.name}" (${name(v.file)}) has no type`).toBeTypeOf("string");
        expect(v.body.description, `variable "${v.name}" (${name(v.file)}) has no description`).toBeTypeOf("string");
        expect((v.body.description as string).trim().length, `variable "${v.name}" has an empty description`).toBeGreaterThan(10);
      }
    });

    it("describes every output", async () => {
      const mod = await loadModule(dir);
      for (const o of labelledBlocks(mod, "output")) {
        expect(o.body.description, `output "${o.name}" (${name(o.file)}) has no description`).toBeTypeOf("string");
      }
    });

    it("pins required_version and every provider's version range", async () => {
      const mod = await loadModule(dir);
      const blocks = mod.files.flatMap((f) => (f.json.terraform ?? []) as Record<string, any>[]);
      expect(blocks.some((b) => typeof b.required_version === "string")).toBe(true);
      for (const b of blocks) {
        for (const providers of (b.required_providers ?? []) as Record<string, { source: string; version: string }>[]) {
          for (const [p, spec] of Object.entries(providers)) expect(spec.version, `provider ${p}`).toMatch(/^>= \d+\.\d+\.\d+, < \d+\.0\.0$/);
        }
      }
    });

    it("calls modules only with arguments they declare, and with every required one", async () => {
      const mod = await loadModule(dir);
      const meta = new Set(["source", "version", "for_each", "count", "providers", "depends_on"]);
      for (const call of labelledBlocks(mod, "module")) {
        const child = await loadModule(resolve(dir, call.body.source as string));
        const declared = new Map(labelledBlocks(child, "variable").map((v) => [v.name, v.body]));
        const given = Object.keys(call.body).filter((k) => !meta.has(k));
        for (const arg of given) expect([...declared.keys()], `module "${call.name}" passes ${arg}`).toContain(arg);
        for (const [v, body] of declared) if (!("default" in body)) expect(given, `module "${call.name}" leaves required variable ${v} unset`).toContain(v);
      }
    });
  });
});
