import path from "node:path";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

/** Routing benchmarks inside workerd (not part of `npm test`): `npx tsx bench/routing/decision-cost.ts`. */
export default defineConfig({
  plugins: [cloudflareTest({ wrangler: { configPath: path.join(import.meta.dirname, "../../../wrangler.toml") }, remoteBindings: false })],
  test: { include: [path.join(import.meta.dirname, "*.bench.ts")], testTimeout: 300_000 },
});
