/**
 * How urgently the edge wants an admitted request served, next to the other tenants' work on the
 * same engine (docs/fairness.md, "Priority to the engines"). The edge decides it at admission
 * (worker/pool/pool-core.ts) and sends it to the agent in the signed `x-switchyard-priority` header:
 *
 * - `high`: a tenant below its fair share of the pool, nothing else of it waiting, while other
 *   tenants wait at the edge — the light tenant next to a flood;
 * - `low`: a tenant with requests still waiting at the edge — over its share right now;
 * - `normal`: everything else (no contention).
 *
 * Engines see vLLM's integer `priority` (smaller is served first, 0 is vLLM's default), so on an
 * engine shared with other clients `normal` ranks like their requests.
 */
export type RequestPriority = "high" | "normal" | "low";

export const REQUEST_PRIORITIES: readonly RequestPriority[] = ["high", "normal", "low"];

const ENGINE_PRIORITY: Record<RequestPriority, number> = { high: -1, normal: 0, low: 1 };

/** vLLM's `priority` request field for a Switchyard priority. */
export function enginePriority(p: RequestPriority): number {
  return ENGINE_PRIORITY[p];
}

/** A header value as a priority; undefined when absent or not one of ours. */
export function parseRequestPriority(value: string | null | undefined): RequestPriority | undefined {
  return value === "high" || value === "normal" || value === "low" ? value : undefined;
}

/** vLLM's `priority` for the signed header's value; undefined when the header is absent or unknown. */
export function vllmPriority(header: string | null | undefined): number | undefined {
  const p = parseRequestPriority(header);
  return p === undefined ? undefined : enginePriority(p);
}
