import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineProject } from "vitest/config";

/** Worker tests run inside workerd with the real bindings: D1 (migrated) and the pool object. */
export default defineProject(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        remoteBindings: false,
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: migrations,
            ADMIN_TOKEN: "test-admin-token-0123456789",
            NODE_SECRET_KEY: "test-node-secret-key-0123456789",
            // Stale after 3 intervals + 1 s = 31 s, so a test's nodes stay live through the test even
            // on a loaded box (pool.test.ts checks the stale bound with a short interval of its own).
            HEARTBEAT_INTERVAL_MS: "10000",
          },
        },
      }),
    ],
    test: {
      name: "worker",
      include: ["test/worker/**/*.test.ts"],
      setupFiles: ["./test/worker/apply-migrations.ts"],
      // vitest's 5 s default is too tight on a loaded 2-core CI box; a test cut off by its timeout
      // keeps running in the background and can disturb the next one (shared fetch mocks).
      testTimeout: 60_000,
      hookTimeout: 60_000,
    },
  };
});
