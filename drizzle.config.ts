import { defineConfig } from "drizzle-kit";

// Generates SQL migrations into migrations/ for wrangler to apply (never `drizzle-kit migrate` on D1).
export default defineConfig({
  dialect: "sqlite",
  schema: "./worker/db/schema.ts",
  out: "./migrations",
});
