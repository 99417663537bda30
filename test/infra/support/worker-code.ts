/**
 * Functions of the Worker's own code that the infra tests compare against. Imported at run time by
 * path: a static import would bring worker/ (and its Workers-only types) into the Node type-check.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { REPO } from "./wrangler";

/** worker/nodes/node-transport.ts: the binding name through which the edge reaches a region. */
export async function workerVpcBindingName(): Promise<(region: string) => string> {
  const mod = (await import(pathToFileURL(resolve(REPO, "worker/nodes/node-transport.ts")).href)) as { vpcBindingName: (region: string) => string };
  return mod.vpcBindingName;
}
