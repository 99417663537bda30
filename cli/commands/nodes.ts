/**
 * `switchyard nodes ...`: register nodes (printing their secret and an agent config once), list
 * them with live per-model state, update, drain, rotate secrets, remove.
 */
import { type Command, Option } from "commander";
import { seg } from "../admin-client";
import { type AdminContext, adminCommand, adminContext, collect, httpUrl, naming, withExamples } from "../admin-command";
import type { DeletedJson, ListBody, LiveJson, NodeJson, NodeWithSecretJson } from "../admin-types";
import { CliError } from "../cli-error";
import { ago, type Column, fields, isoWithAge, json, percent, table, yesNo } from "../output";

export const SECRET_WARNING = "Store this secret now: it is shown only this once and cannot be retrieved later.";

/** One row of `nodes list`: a node and one of its models, with the pool's live view of it. */
interface NodeModelRow {
  node: NodeJson;
  model: string;
  live: LiveJson | undefined;
}

function statusOf(node: NodeJson, live: LiveJson | undefined): string {
  const status = live?.status ?? (node.drained ? "drained" : "no heartbeat");
  return node.drained && live && live.status !== "draining" ? `${status} (drained)` : status;
}

const listColumns: Column<NodeModelRow>[] = [
  { header: "node", value: (r) => r.node.id },
  { header: "region", value: (r) => r.node.region },
  { header: "model", value: (r) => r.model },
  { header: "status", value: (r) => statusOf(r.node, r.live) },
  { header: "inflight", value: (r) => (r.live ? `${r.live.inflight}/${r.live.max_concurrency}` : null), right: true },
  { header: "running", value: (r) => r.live?.running, right: true },
  { header: "waiting", value: (r) => r.live?.waiting, right: true },
  { header: "kv", value: (r) => (r.live ? percent(r.live.kv_usage) : null), right: true },
  { header: "heartbeat", value: (r) => (r.live ? ago(r.live.last_heartbeat_at) : null) },
];

const liveColumns: Column<LiveJson>[] = [
  { header: "model", value: (l) => l.model },
  { header: "status", value: (l) => l.status },
  { header: "engine", value: (l) => l.engine },
  { header: "url", value: (l) => l.url },
  { header: "inflight", value: (l) => `${l.inflight}/${l.max_concurrency}`, right: true },
  { header: "running", value: (l) => l.running, right: true },
  { header: "waiting", value: (l) => l.waiting, right: true },
  { header: "kv", value: (l) => percent(l.kv_usage), right: true },
  { header: "kv tokens", value: (l) => l.kv_capacity_tokens, right: true },
  { header: "heartbeat", value: (l) => ago(l.last_heartbeat_at) },
];

/** Registered models first (in order), then any the pools still report for the node. */
export function nodeModelRows(nodes: NodeJson[]): NodeModelRow[] {
  const rows: NodeModelRow[] = [];
  for (const node of nodes) {
    const live = node.live ?? [];
    const models = [...new Set([...node.models, ...live.map((l) => l.model)])];
    for (const model of models) rows.push({ node, model, live: live.find((l) => l.model === model) });
  }
  return rows;
}

function nodeFields(n: NodeJson): string {
  return fields([
    ["id", n.id],
    ["region", n.region],
    ["url", n.url ?? "(none registered: the agent's advertised URL is used)"],
    ["models", n.models.join(", ")],
    ["drained", yesNo(n.drained)],
    ["key version", n.key_version],
    ["pending key version", n.pending_key_version ?? "none"],
    ["created", isoWithAge(n.created_at)],
    ["updated", isoWithAge(n.updated_at)],
  ]);
}

function liveSection(n: NodeJson): string {
  const live = n.live ?? [];
  if (live.length === 0) {
    return "\nLive: no heartbeats for this node's models yet (only configured models are tracked: switchyard models list).\n";
  }
  return `\nLive:\n${table(live, liveColumns)}`;
}

/** A ready-to-paste agent config for a freshly registered node (engine entries are examples). */
export function agentConfigSnippet(node: NodeJson, edgeUrl: string, secret: string): Record<string, unknown> {
  const port = node.url ? Number(new URL(node.url).port) || 8801 : 8801;
  return {
    nodeId: node.id,
    region: node.region,
    // With a registered URL the edge connects from outside: listen on every interface.
    listen: { host: node.url ? "0.0.0.0" : "127.0.0.1", port },
    edge: { url: edgeUrl, nodeSecret: secret },
    engines: node.models.map((model, i) => ({ kind: "openai", model, url: `http://127.0.0.1:${8000 + i}` })),
  };
}

/** Prints the edge's warnings (models nobody configured yet) to stderr. */
function printWarnings(ctx: AdminContext, warnings: string[] | undefined): void {
  for (const w of warnings ?? []) ctx.out.err(`switchyard: warning: ${w}; configure it with: switchyard models configure <name>\n`);
}

interface RegisterOpts {
  region: string;
  model: string[];
  url?: string;
}

interface UpdateOpts {
  region?: string;
  url?: string | false;
  model?: string[];
}

export function registerNodeCommands(program: Command): void {
  const nodes = withExamples(program.command("nodes").description("manage nodes: the machines whose agents serve models"), [
    "switchyard nodes register gpu-a1 --region eu-west --model llama-3.1-8b",
    "switchyard nodes list",
  ]);

  adminCommand(nodes, "register <id>", "register a node; prints its secret once and an agent config to start it with", [
    "switchyard nodes register gpu-a1 --region eu-west --model llama-3.1-8b",
    "switchyard nodes register gpu-a2 --region eu-west --model llama-3.1-8b --model qwen2.5-7b --url http://10.0.0.12:8801",
  ])
    .requiredOption("--region <region>", "region the node runs in (lowercase slug)")
    .requiredOption("--model <model>", "model the node serves (repeat, or comma-separate, for several)", collect)
    .option("--url <url>", "URL the edge uses to reach the agent; without it the agent's advertised URL is used", httpUrl)
    .action(async (id: string, opts: RegisterOpts, cmd: Command) => {
      const ctx = adminContext(cmd);
      const n = await naming(
        ctx.client.post<NodeWithSecretJson>("/nodes", {
          id,
          region: opts.region,
          models: opts.model,
          ...(opts.url !== undefined ? { url: opts.url } : {}),
        }),
        { id: "<id>", region: "--region", models: "--model", url: "--url" },
      );
      if (ctx.json) {
        ctx.out.out(json(n));
        ctx.out.err(`switchyard: warning: ${SECRET_WARNING}\n`);
        printWarnings(ctx, n.warnings);
        return;
      }
      const lines = [`Registered node ${n.id} (region ${n.region}; models: ${n.models.join(", ")}).`, ""];
      lines.push(`WARNING: ${SECRET_WARNING} It is the edge.nodeSecret below (env SWITCHYARD_NODE_SECRET).`);
      lines.push(
        "",
        "Agent config (save as agent.json; the engine entries are examples: point them at your engine servers):",
        JSON.stringify(agentConfigSnippet(n, ctx.client.connection.edgeUrl, n.secret), null, 2),
        "",
        "Start the agent with:  switchyard agent --config agent.json",
      );
      if (!n.url) lines.push("No --url was registered: set advertiseUrl in the config to the address the edge can reach this agent at (unless the edge runs on this machine).");
      ctx.out.out(`${lines.join("\n")}\n`);
      printWarnings(ctx, n.warnings);
    });

  adminCommand(nodes, "list", "list nodes with live state per model (status, load, KV usage, last heartbeat)", [
    "switchyard nodes list",
    "switchyard nodes list --json | jq '.data[] | {id, live}'",
  ]).action(async (_opts: unknown, cmd: Command) => {
    const ctx = adminContext(cmd);
    const body = await ctx.client.get<ListBody<NodeJson>>("/nodes");
    if (ctx.json) return ctx.out.out(json(body));
    ctx.out.out(body.data.length === 0 ? "No nodes registered. Register one with: switchyard nodes register <id> --region <r> --model <m>\n" : table(nodeModelRows(body.data), listColumns));
  });

  adminCommand(nodes, "show <id>", "show a node, with the live state of each of its models", ["switchyard nodes show gpu-a1"]).action(
    async (id: string, _opts: unknown, cmd: Command) => {
      const ctx = adminContext(cmd);
      const n = await ctx.client.get<NodeJson>(`/nodes/${seg(id)}`);
      ctx.out.out(ctx.json ? json(n) : nodeFields(n) + liveSection(n));
    },
  );

  adminCommand(nodes, "update <id>", "change a node's region, URL or models (models replace the list)", [
    "switchyard nodes update gpu-a1 --region eu-central",
    "switchyard nodes update gpu-a1 --url http://10.0.0.11:8801",
    "switchyard nodes update gpu-a1 --no-url",
    "switchyard nodes update gpu-a1 --model llama-3.1-8b --model qwen2.5-7b",
  ])
    .option("--region <region>", "new region (lowercase slug)")
    .option("--url <url>", "new URL the edge uses to reach the agent", httpUrl)
    .addOption(new Option("--no-url", "forget the registered URL: use the agent's advertised one"))
    .option("--model <model>", "the node's models, replacing the current list (repeat, or comma-separate)", collect)
    .action(async (id: string, opts: UpdateOpts, cmd: Command) => {
      const body = {
        ...(opts.region !== undefined ? { region: opts.region } : {}),
        ...(opts.url !== undefined ? { url: opts.url === false ? null : opts.url } : {}),
        ...(opts.model !== undefined ? { models: opts.model } : {}),
      };
      if (Object.keys(body).length === 0) throw new CliError("nothing to update: give --region, --url, --no-url or --model");
      const ctx = adminContext(cmd);
      const n = await naming(ctx.client.patch<NodeJson>(`/nodes/${seg(id)}`, body), { region: "--region", url: "--url", models: "--model", node: "<id>" });
      ctx.out.out(ctx.json ? json(n) : `Updated node ${n.id}.\n${nodeFields(n)}`);
    });

  adminCommand(nodes, "drain <id>", "stop routing new requests to a node (in-flight ones finish)", ["switchyard nodes drain gpu-a1"]).action(
    async (id: string, _opts: unknown, cmd: Command) => {
      const ctx = adminContext(cmd);
      const n = await ctx.client.post<NodeJson>(`/nodes/${seg(id)}/drain`);
      ctx.out.out(ctx.json ? json(n) : `Node ${n.id} is drained: it gets no new requests. Undo with: switchyard nodes undrain ${n.id}\n`);
    },
  );

  adminCommand(nodes, "undrain <id>", "route requests to a drained node again", ["switchyard nodes undrain gpu-a1"]).action(
    async (id: string, _opts: unknown, cmd: Command) => {
      const ctx = adminContext(cmd);
      const n = await ctx.client.post<NodeJson>(`/nodes/${seg(id)}/undrain`);
      ctx.out.out(ctx.json ? json(n) : `Node ${n.id} is no longer drained: it gets requests again while healthy.\n`);
    },
  );

  adminCommand(
    nodes,
    "rotate-secret <id>",
    "issue a node a new secret (printed once) without downtime; --immediate for a leaked secret",
    ["switchyard nodes rotate-secret gpu-a1", "switchyard nodes rotate-secret gpu-a1 --immediate"],
    "By default the new secret is pending: the edge keeps signing with the old one until the agent's first\n" +
      "heartbeat signed with the new one, then switches. With --immediate the old secret stops working at\n" +
      "once, and the node serves nothing until its agent has the new one.",
  )
    .option("--immediate", "make the new secret active at once (for a leaked secret)")
    .action(async (id: string, opts: { immediate?: boolean }, cmd: Command) => {
      const ctx = adminContext(cmd);
      const n = await ctx.client.post<NodeWithSecretJson>(`/nodes/${seg(id)}/rotate-secret`, { immediate: opts.immediate === true });
      if (ctx.json) {
        ctx.out.out(json(n));
        ctx.out.err(`switchyard: warning: ${SECRET_WARNING}\n`);
        return;
      }
      const version = n.pending_key_version ?? n.key_version;
      const lines = [`New secret for node ${n.id} (version ${version}):`, "", `  ${n.secret}`, "", `WARNING: ${SECRET_WARNING}`, ""];
      if (n.immediate) {
        lines.push(
          "It is active now: the old secret no longer works. Give the agent the new secret as edge.nodeSecret",
          "(env SWITCHYARD_NODE_SECRET) and restart it; until then the node gets no traffic.",
        );
      } else {
        lines.push(
          "It is pending: the edge keeps using the old secret until the agent signs a heartbeat with the new one.",
          "Give the agent the new secret as edge.nodeSecret (env SWITCHYARD_NODE_SECRET) and the old one as",
          "edge.previousNodeSecret (env SWITCHYARD_PREVIOUS_NODE_SECRET), then restart it: no request is refused",
          "on the way. Drop previousNodeSecret at a later restart.",
        );
      }
      ctx.out.out(`${lines.join("\n")}\n`);
    });

  adminCommand(nodes, "remove <id>", "deregister a node: the edge stops routing to it and forgets it", ["switchyard nodes remove gpu-a1"]).action(
    async (id: string, _opts: unknown, cmd: Command) => {
      const ctx = adminContext(cmd);
      const r = await ctx.client.delete<DeletedJson>(`/nodes/${seg(id)}`);
      ctx.out.out(ctx.json ? json(r) : `Removed node ${r.id ?? id}.\n`);
    },
  );
}
