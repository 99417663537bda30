import { defineConfig } from "vitest/config";

/**
 * One `vitest run` drives three projects: worker tests inside workerd (vitest.worker.config.ts),
 * data-plane tests in Node, and end-to-end tests that start the real stack.
 */
export default defineConfig({
  test: {
    reporters: ["default", ["json", { outputFile: "test-results/vitest.json" }]],
    projects: [
      "./vitest.worker.config.ts",
      {
        test: {
          name: "dataplane",
          environment: "node",
          include: ["test/dataplane/**/*.test.ts", "test/protocol/**/*.test.ts", "test/infra/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "e2e",
          environment: "node",
          include: ["test/e2e/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 240_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
