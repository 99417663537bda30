/**
 * The admin CLI's pieces in-process: formatters, option parsers, the HTTP client's error mapping,
 * and every command's help (parsed as main.ts parses it, without a process per command).
 */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { AdminApiError, AdminClient, resolveConnection, seg } from "../../../cli/admin-client";
import { collect, httpUrl, isoDateTime, naming, positiveNumber } from "../../../cli/admin-command";
import { CliError } from "../../../cli/cli-error";
import { registerAdminCommands } from "../../../cli/commands/admin";
import { keyIdOf } from "../../../cli/commands/keys";
import { agentConfigSnippet, nodeModelRows } from "../../../cli/commands/nodes";
import { ago, fields, percent, shortIso, table } from "../../../cli/output";
import { parseAgentConfig } from "../../../dataplane/agent/config";

describe("output", () => {
  it("table aligns columns, right-aligns numbers, shows '-' for nothing and trims line ends", () => {
    const text = table(
      [
        { a: "x", n: 5, z: null },
        { a: "longer", n: 1234, z: "end" },
      ],
      [
        { header: "name", value: (r) => r.a },
        { header: "num", value: (r) => r.n, right: true },
        { header: "last", value: (r) => r.z },
      ],
    );
    expect(text).toBe(["NAME     NUM  LAST", "x          5  -", "longer  1234  end", ""].join("\n"));
  });

  it("fields aligns labels", () => {
    expect(fields([["id", "a"], ["long label", null]])).toBe("id:          a\nlong label:  -\n");
  });

  it("ago, shortIso, percent", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(ago("2025-12-31T23:59:57Z", now)).toBe("3s ago");
    expect(ago("2025-12-31T23:55:00Z", now)).toBe("5m ago");
    expect(ago("2025-12-31T22:00:00Z", now)).toBe("2h ago");
    expect(ago("2025-12-28T00:00:00Z", now)).toBe("4d ago");
    expect(ago("2026-01-04T00:00:00Z", now)).toBe("in 3d");
    expect(ago(null, now)).toBe("-");
    expect(shortIso("2026-01-02T03:04:05.678Z")).toBe("2026-01-02T03:04:05Z");
    expect(percent(0.421)).toBe("42%");
  });
});

describe("option parsers", () => {
  it("validate locally, naming the problem", () => {
    expect(positiveNumber(3650)("1.5")).toBe(1.5);
    for (const bad of ["0", "-1", "x", "", "4000"]) expect(() => positiveNumber(3650)(bad)).toThrow(InvalidArgumentError);
    expect(isoDateTime("2026-12-31")).toBe("2026-12-31T00:00:00.000Z");
    expect(isoDateTime("2026-12-31T10:00:00+02:00")).toBe("2026-12-31T08:00:00.000Z");
    expect(() => isoDateTime("2026-12-31T10:00")).toThrow(/time zone/);
    expect(() => isoDateTime("next week")).toThrow(/ISO 8601/);
    expect(() => isoDateTime("2026-02-29")).toThrow(/not a valid date/);
    expect(() => isoDateTime("2026-04-31T10:00Z")).toThrow(/not a valid date/);
    expect(() => isoDateTime("2026-01-01T24:00Z")).toThrow(/not a valid date/);
    expect(isoDateTime("2028-02-29T23:59:59.5Z")).toBe("2028-02-29T23:59:59.500Z");
    expect(httpUrl("https://n.example:8801")).toBe("https://n.example:8801");
    expect(() => httpUrl("n.example")).toThrow(/URL/);
    expect(collect("a, b", ["x"])).toEqual(["x", "a", "b"]);
    expect(keyIdOf("sk-sy-key_abc123.secretpart")).toBe("key_abc123");
    expect(keyIdOf("key_abc123")).toBe("key_abc123");
  });

  it("resolveConnection needs a token and an http(s) edge URL", () => {
    expect(resolveConnection({ edgeUrl: "https://edge.example/sy/admin/", adminToken: " t " })).toEqual({ edgeUrl: "https://edge.example/sy", adminToken: "t" });
    expect(() => resolveConnection({ edgeUrl: "http://x" })).toThrow(/admin token is required/);
    expect(() => resolveConnection({ edgeUrl: "ftp://x", adminToken: "t" })).toThrow(/--edge-url/);
    expect(seg("meta-llama/Llama 3")).toBe("meta-llama%2FLlama%203");
  });
});

describe("AdminClient", () => {
  const conn = { edgeUrl: "http://edge.test", adminToken: "tok" };

  it("sends the bearer token and JSON, returns the parsed body", async () => {
    let seen: { url: string; init: RequestInit | undefined } | undefined;
    const client = new AdminClient(conn, (async (url: string, init?: RequestInit) => {
      seen = { url, init };
      return new Response(JSON.stringify({ ok: 1 }), { status: 201 });
    }) as typeof fetch);
    expect(await client.post("/tenants", { name: "a" })).toEqual({ ok: 1 });
    expect(seen?.url).toBe("http://edge.test/admin/tenants");
    expect(seen?.init?.body).toBe('{"name":"a"}');
    expect((seen?.init?.headers as Record<string, string>).authorization).toBe("Bearer tok");
  });

  it("turns an OpenAI error body into an AdminApiError naming status and param", async () => {
    const body = { error: { message: "'region': must be a lowercase slug", type: "invalid_request_error", param: "region", code: "invalid_value" } };
    const client = new AdminClient(conn, (async () => new Response(JSON.stringify(body), { status: 400 })) as unknown as typeof fetch);
    const err = await client.post("/nodes", {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdminApiError);
    expect(err).toBeInstanceOf(CliError);
    expect(err).toMatchObject({ status: 400, param: "region", code: "invalid_value" });
    expect((err as Error).message).toBe("'region': must be a lowercase slug (HTTP 400; param: region, code: invalid_value)");
  });

  it("names the CLI option behind the API's param", async () => {
    const body = { error: { message: "'models[0]': too long", type: "invalid_request_error", param: "models[0]", code: "invalid_value" } };
    const client = new AdminClient(conn, (async () => new Response(JSON.stringify(body), { status: 400 })) as unknown as typeof fetch);
    await expect(naming(client.post("/nodes", {}), { models: "--model" })).rejects.toThrow("'models[0]': too long (HTTP 400; param: models[0] (--model), code: invalid_value)");
  });

  it("names the URL when the edge cannot be reached", async () => {
    const client = new AdminClient(conn, (async () => {
      throw new TypeError("fetch failed", { cause: Object.assign(new Error("getaddrinfo ENOTFOUND edge.test"), { code: "ENOTFOUND" }) });
    }) as unknown as typeof fetch);
    await expect(client.get("/nodes")).rejects.toThrow("cannot reach the edge at http://edge.test/admin/nodes: getaddrinfo ENOTFOUND edge.test");
  });

  it("gives up after its timeout, naming the URL", async () => {
    const client = new AdminClient({ ...conn, timeoutMs: 50 }, ((_url: string, init?: RequestInit) =>
      new Promise((_ok, fail) => init?.signal?.addEventListener("abort", () => fail(init.signal?.reason)))) as unknown as typeof fetch);
    await expect(client.get("/nodes")).rejects.toThrow("cannot reach the edge at http://edge.test/admin/nodes: no answer within 0.05s");
  });
});

describe("nodes helpers", () => {
  const node = { id: "n1", region: "r", url: "https://n1.example:9443", models: ["a", "b"], drained: false, key_version: 1, pending_key_version: null, created_at: null, updated_at: null };

  it("the agent config snippet is a valid agent config", () => {
    const secret = `sy_ns_3_${"A".repeat(43)}`;
    const cfg = parseAgentConfig(agentConfigSnippet(node, "https://edge.example", secret), "snippet");
    expect(cfg.listen).toEqual({ host: "0.0.0.0", port: 9443 });
    expect(cfg.engines.map((e) => e.model)).toEqual(["a", "b"]);
  });

  it("one row per registered model, plus models only the pools report", () => {
    const rows = nodeModelRows([{ ...node, live: [{ model: "c" } as never] }]);
    expect(rows.map((r) => [r.model, r.live !== undefined])).toEqual([
      ["a", false],
      ["b", false],
      ["c", true],
    ]);
  });
});

describe("help", () => {
  function program(): { root: Command; out: string[] } {
    const out: string[] = [];
    const root = new Command().name("switchyard").exitOverride().configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => out.push(s) });
    registerAdminCommands(root);
    return { root, out };
  }

  it("every admin command has help with an example and the connection options", async () => {
    const { root } = program();
    const paths: string[][] = [];
    for (const group of root.commands) {
      paths.push([group.name()]);
      for (const sub of group.commands) if (sub.name() !== "help") paths.push([group.name(), sub.name()]);
    }
    // groups + tenants (7) + keys (4) + nodes (8) + models (6) + regions (3)
    expect(paths.length).toBe(5 + 7 + 4 + 8 + 6 + 3);
    for (const path of paths) {
      const { root: fresh, out } = program();
      const err = await fresh.parseAsync(["node", "switchyard", ...path, "--help"]).catch((e: unknown) => e);
      expect(err, path.join(" ")).toBeInstanceOf(CommanderError);
      expect((err as CommanderError).exitCode).toBe(0);
      const text = out.join("");
      expect(text).toContain(`Usage: switchyard ${path.join(" ")}`);
      expect(text).toMatch(/Examples:\n {2}\$ switchyard /);
      if (path.length === 2) expect(text).toMatch(/Connection options:\n {2}--edge-url <url>[\s\S]*--admin-token <token>[\s\S]*--json/);
    }
  });

  it("usage errors exit 2", async () => {
    const { root } = program();
    const err = await root.parseAsync(["node", "switchyard", "keys", "issue"]).catch((e: unknown) => e);
    expect(err).toMatchObject({ exitCode: 2, code: "commander.missingArgument" });
  });
});
