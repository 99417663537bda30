import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { call, createTenantWithKey } from "./helpers";

describe("key lookups", () => {
  it("cost one D1 query per key per cache period, not one per request", async () => {
    const { key } = await createTenantWithKey();
    const prepare = vi.spyOn(env.DB, "prepare");
    for (let i = 0; i < 10; i++) {
      const res = await call("/v1/models", { headers: { authorization: `Bearer ${key}` } });
      expect(res.status).toBe(200);
    }
    const keyQueries = prepare.mock.calls.filter(([sql]) => /from "api_keys"/i.test(String(sql)));
    expect(keyQueries.length).toBe(1);
    prepare.mockRestore();
  });

  it("a flood of wrong keys costs one D1 query per distinct key", async () => {
    const prepare = vi.spyOn(env.DB, "prepare");
    const wrong = "sk-sy-key_zzzzzzzzzzzz.wrongwrongwrongwrongwrongwrongwrongwrongwro";
    for (let i = 0; i < 10; i++) expect((await call("/v1/models", { headers: { authorization: `Bearer ${wrong}` } })).status).toBe(401);
    expect(prepare.mock.calls.filter(([sql]) => /from "api_keys"/i.test(String(sql))).length).toBe(1);
    prepare.mockRestore();
  });
});
