/**
 * Registers GPU nodes with the edge on behalf of Terraform (infra/modules/gpu-region/registration.tf)
 * and keeps each node's signing secret in the cloud's secret store.
 *
 * The edge shows a node's secret exactly once (POST /admin/nodes, or a rotation), so this script
 * pipes it from the admin API's answer straight into the store: it is never printed, never on a
 * command line, and never in Terraform state. Every command is idempotent, because Terraform may run
 * it again after a partial failure:
 *
 *   ensure-node  register the node; if the edge already knows it, bring region and models up to date,
 *                and if the store lost its secret, rotate the secret at once and store the new one
 *   remove-node  deregister the node (absent is fine)
 *   rotate-node  rotate without downtime: store {nodeSecret: new, previousNodeSecret: old}; the edge
 *                switches to the new secret at the agent's first heartbeat signed with it, so restart
 *                the agent (systemctl restart switchyard-agent) after this
 *   set-region   record the region's coordinates for nearest-region routing
 *
 * Usage: npx tsx infra/scripts/edge-registration.ts ensure-node --node eu-west-0 --region eu-west \
 *          --model llama-3.1-8b --edge-url https://llm.example.com --secret-id <arn> --aws-region eu-west-1
 * The admin token comes from SWITCHYARD_ADMIN_TOKEN; AWS credentials from the usual places.
 */
import { spawn } from "node:child_process";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { AdminApiError, AdminClient, resolveConnection, seg } from "../../cli/admin-client";
import type { NodeJson, NodeWithSecretJson } from "../../cli/admin-types";
import { CliError } from "../../cli/cli-error";

/** The slice of the admin client this script uses (a fake in tests). */
export interface AdminApi {
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  put<T>(path: string, body: unknown): Promise<T>;
  patch<T>(path: string, body: unknown): Promise<T>;
  delete<T>(path: string): Promise<T>;
}

/** Where one node's secret lives: a Secrets Manager secret, or a fake in tests. */
export interface SecretStore {
  /** Whether the secret has a current value. */
  hasValue(): Promise<boolean>;
  /** The current value, or null when there is none. */
  get(): Promise<string | null>;
  put(value: string): Promise<void>;
}

/** What the store holds for a node: JSON, so a rotation can carry the secret being replaced. */
export interface StoredNodeSecret {
  nodeSecret: string;
  previousNodeSecret?: string;
}

export interface NodeSpec {
  id: string;
  region: string;
  models: string[];
}

export type EnsureResult = "registered" | "updated" | "rotated" | "unchanged";

async function getOrNull<T>(admin: AdminApi, path: string): Promise<T | null> {
  try {
    return await admin.get<T>(path);
  } catch (err) {
    if (err instanceof AdminApiError && err.status === 404) return null;
    throw err;
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const x = new Set(a);
  const y = new Set(b);
  return x.size === y.size && [...x].every((v) => y.has(v));
}

function parseStored(value: string | null): StoredNodeSecret | null {
  if (value === null) return null;
  try {
    const parsed = JSON.parse(value) as Partial<StoredNodeSecret>;
    return typeof parsed.nodeSecret === "string" ? { nodeSecret: parsed.nodeSecret, ...(typeof parsed.previousNodeSecret === "string" ? { previousNodeSecret: parsed.previousNodeSecret } : {}) } : null;
  } catch {
    return null;
  }
}

export async function ensureNode(admin: AdminApi, store: SecretStore, spec: NodeSpec, log: (line: string) => void = () => {}): Promise<EnsureResult> {
  const path = `/nodes/${seg(spec.id)}`;
  const existing = await getOrNull<NodeJson>(admin, path);
  if (!existing) {
    const created = await admin.post<NodeWithSecretJson>("/nodes", { id: spec.id, region: spec.region, models: spec.models });
    await store.put(JSON.stringify({ nodeSecret: created.secret } satisfies StoredNodeSecret));
    for (const w of created.warnings ?? []) log(`warning: ${w}`);
    return "registered";
  }
  let result: EnsureResult = "unchanged";
  if (existing.region !== spec.region || !sameSet(existing.models, spec.models)) {
    await admin.patch(path, { region: spec.region, models: spec.models });
    result = "updated";
  }
  // Registered, but the secret never reached the store (or was deleted): the edge cannot show it
  // again, so replace it at once. The node serves nothing until its agent has the new one, which it
  // fetches at its next start.
  if (parseStored(await store.get()) === null) {
    const rotated = await admin.post<NodeWithSecretJson>(`${path}/rotate-secret`, { immediate: true });
    await store.put(JSON.stringify({ nodeSecret: rotated.secret } satisfies StoredNodeSecret));
    return "rotated";
  }
  return result;
}

export async function removeNode(admin: AdminApi, id: string): Promise<"removed" | "absent"> {
  try {
    await admin.delete(`/nodes/${seg(id)}`);
    return "removed";
  } catch (err) {
    if (err instanceof AdminApiError && err.status === 404) return "absent";
    throw err;
  }
}

/** A pending rotation: the agent accepts both secrets until the edge switches to the new one. */
export async function rotateNode(admin: AdminApi, store: SecretStore, id: string): Promise<void> {
  const current = parseStored(await store.get());
  const rotated = await admin.post<NodeWithSecretJson>(`/nodes/${seg(id)}/rotate-secret`, { immediate: false });
  const next: StoredNodeSecret = current ? { nodeSecret: rotated.secret, previousNodeSecret: current.nodeSecret } : { nodeSecret: rotated.secret };
  await store.put(JSON.stringify(next));
}

export async function setRegion(admin: AdminApi, region: string, latitude: number, longitude: number): Promise<void> {
  await admin.put(`/regions/${seg(region)}`, { latitude, longitude });
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], stdin?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (err: NodeJS.ErrnoException) => reject(err.code === "ENOENT" ? new CliError(`${command} not found: install the AWS CLI (v2)`) : err));
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(stdin ?? "");
  });
}

/** A Secrets Manager secret through the AWS CLI; values travel on stdin, never on the command line. */
export class AwsCliSecretStore implements SecretStore {
  constructor(
    readonly secretId: string,
    readonly awsRegion: string,
    readonly awsCommand = "aws",
  ) {}

  private base(op: string): string[] {
    return ["secretsmanager", op, "--region", this.awsRegion, "--secret-id", this.secretId];
  }

  async hasValue(): Promise<boolean> {
    const r = await run(this.awsCommand, [...this.base("describe-secret"), "--output", "json"]);
    if (r.code !== 0) throw new CliError(`aws secretsmanager describe-secret ${this.secretId} failed: ${r.stderr.trim()}`);
    const stages = (JSON.parse(r.stdout) as { VersionIdsToStages?: Record<string, string[]> }).VersionIdsToStages ?? {};
    return Object.values(stages).some((s) => s.includes("AWSCURRENT"));
  }

  async get(): Promise<string | null> {
    if (!(await this.hasValue())) return null;
    const r = await run(this.awsCommand, [...this.base("get-secret-value"), "--query", "SecretString", "--output", "text"]);
    if (r.code !== 0) throw new CliError(`aws secretsmanager get-secret-value ${this.secretId} failed: ${r.stderr.trim()}`);
    return r.stdout.replace(/\n$/, "");
  }

  async put(value: string): Promise<void> {
    const r = await run(this.awsCommand, [...this.base("put-secret-value"), "--secret-string", "file:///dev/stdin", "--output", "json"], value);
    if (r.code !== 0) throw new CliError(`aws secretsmanager put-secret-value ${this.secretId} failed: ${r.stderr.trim()}`);
  }
}

function adminFromEnv(edgeUrl: string | undefined): AdminClient {
  return new AdminClient(resolveConnection({ edgeUrl, adminToken: process.env.SWITCHYARD_ADMIN_TOKEN }));
}

function required(values: Record<string, unknown>, ...names: string[]): void {
  for (const n of names) if (values[n] === undefined || values[n] === "") throw new CliError(`--${n} is required`);
}

export async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      node: { type: "string" },
      region: { type: "string" },
      model: { type: "string", multiple: true },
      "edge-url": { type: "string" },
      "secret-id": { type: "string" },
      "aws-region": { type: "string" },
      latitude: { type: "string" },
      longitude: { type: "string" },
    },
  });
  const [command] = positionals;
  const out = (line: string) => process.stdout.write(`edge-registration: ${line}\n`);
  switch (command) {
    case "ensure-node": {
      required(values, "node", "region", "model", "edge-url", "secret-id", "aws-region");
      const store = new AwsCliSecretStore(values["secret-id"] as string, values["aws-region"] as string);
      const result = await ensureNode(adminFromEnv(values["edge-url"]), store, { id: values.node as string, region: values.region as string, models: values.model as string[] }, out);
      out(`node ${values.node}: ${result}${result === "registered" || result === "rotated" ? `; its secret is in ${values["secret-id"]}` : ""}`);
      return;
    }
    case "remove-node": {
      required(values, "node", "edge-url");
      out(`node ${values.node}: ${await removeNode(adminFromEnv(values["edge-url"]), values.node as string)}`);
      return;
    }
    case "rotate-node": {
      required(values, "node", "edge-url", "secret-id", "aws-region");
      await rotateNode(adminFromEnv(values["edge-url"]), new AwsCliSecretStore(values["secret-id"] as string, values["aws-region"] as string), values.node as string);
      out(`node ${values.node}: new secret pending in ${values["secret-id"]}; restart its agent (systemctl restart switchyard-agent) to switch`);
      return;
    }
    case "set-region": {
      required(values, "region", "latitude", "longitude", "edge-url");
      const lat = Number(values.latitude);
      const lon = Number(values.longitude);
      if (!Number.isFinite(lat) || !Number.isFinite(lon)) throw new CliError("--latitude and --longitude must be numbers");
      await setRegion(adminFromEnv(values["edge-url"]), values.region as string, lat, lon);
      out(`region ${values.region}: at ${lat}, ${lon}`);
      return;
    }
    default:
      throw new CliError(`unknown command '${command ?? ""}': ensure-node, remove-node, rotate-node or set-region`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`edge-registration: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof CliError ? 2 : 1);
  });
}
