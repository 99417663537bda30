/**
 * Regions nearest the caller first. The caller's location comes from the request's Cloudflare
 * metadata (`request.cf.latitude/longitude`, set at the colo that received it); regions have
 * coordinates configured by the operator. Without a caller location (local dev, tests) the
 * configured default region comes first and the rest follow by name.
 */
import { eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { regions, type RegionRow } from "../db/schema";
import { TtlCache } from "../lib/ttl-cache";

export interface Location {
  latitude: number;
  longitude: number;
}

const cache = new TtlCache<RegionRow[]>(5_000, 4);

export function forgetRegions(): void {
  cache.clear();
}

export function listRegions(db: Db, { fresh = false } = {}): Promise<RegionRow[]> {
  if (fresh) cache.clear();
  return cache.getOrLoad("all", () => db.select().from(regions).orderBy(regions.id));
}

export async function getRegion(db: Db, id: string): Promise<RegionRow | undefined> {
  return (await db.select().from(regions).where(eq(regions.id, id)).limit(1))[0];
}

/** Great-circle distance in km. */
export function distanceKm(a: Location, b: Location): number {
  const rad = Math.PI / 180;
  const dLat = (b.latitude - a.latitude) * rad;
  const dLon = (b.longitude - a.longitude) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.latitude * rad) * Math.cos(b.latitude * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** Reads the caller's location from Cloudflare's request metadata, if present and sane. */
export function callerLocation(cf: unknown): Location | undefined {
  if (typeof cf !== "object" || cf === null) return undefined;
  const lat = Number((cf as { latitude?: unknown }).latitude);
  const lon = Number((cf as { longitude?: unknown }).longitude);
  if (!Number.isFinite(lat) || !Number.isFinite(lon) || Math.abs(lat) > 90 || Math.abs(lon) > 180) return undefined;
  return { latitude: lat, longitude: lon };
}

/** Region ids by preference: nearest first when the caller's location is known. */
export function regionOrder(known: readonly RegionRow[], caller: Location | undefined, defaultRegion: string | undefined): string[] {
  if (caller) {
    return [...known].sort((a, b) => distanceKm(caller, a) - distanceKm(caller, b)).map((r) => r.id);
  }
  const ids = known.map((r) => r.id);
  return defaultRegion ? [defaultRegion, ...ids.filter((id) => id !== defaultRegion)] : ids;
}
