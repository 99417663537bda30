/** Admin: regions and where they are (requests go to the nearest region with room). */
import { eq } from "drizzle-orm";
import { Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../../protocol/openai-error";
import { openDb } from "../db/client";
import { regions, type RegionRow } from "../db/schema";
import type { AppEnv } from "../env";
import { SLUG_PATTERN } from "../lib/ids";
import { forgetRegions, getRegion, listRegions } from "../regions/region-order";
import { adminBody, iso, list } from "./validate";

const configureRegion = z.strictObject({
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
});

function regionJson(r: RegionRow) {
  return { id: r.id, latitude: r.latitude, longitude: r.longitude, created_at: iso(r.createdAt), updated_at: iso(r.updatedAt) };
}

export const regionRoutes = new Hono<AppEnv>()
  .get("/regions", async (c) => c.json(list((await listRegions(openDb(c.env.DB), { fresh: true })).map(regionJson))))
  .put("/regions/:id", async (c) => {
    const id = c.req.param("id");
    if (!SLUG_PATTERN.test(id)) throw new ApiError(400, "'id' must be a lowercase slug", { param: "id", code: "invalid_value" });
    const body = await adminBody(c, configureRegion);
    const db = openDb(c.env.DB);
    const existing = await getRegion(db, id);
    const now = Date.now();
    const row: RegionRow = { id, latitude: body.latitude, longitude: body.longitude, createdAt: existing?.createdAt ?? now, updatedAt: now };
    await db.insert(regions).values(row).onConflictDoUpdate({ target: regions.id, set: { latitude: row.latitude, longitude: row.longitude, updatedAt: now } });
    forgetRegions();
    return c.json(regionJson(row), existing ? 200 : 201);
  })
  .delete("/regions/:id", async (c) => {
    const id = c.req.param("id");
    const deleted = await openDb(c.env.DB).delete(regions).where(eq(regions.id, id)).returning({ id: regions.id });
    if (deleted.length === 0) throw new ApiError(404, `Region '${id}' does not exist.`, { param: "region", code: "region_not_found" });
    forgetRegions();
    return c.json({ id, deleted: true });
  });
