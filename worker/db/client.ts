import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

export type Db = ReturnType<typeof openDb>;

/** A drizzle handle over the D1 binding; cheap, so made per use. */
export function openDb(d1: D1Database) {
  return drizzle(d1, { schema });
}
