/**
 * Runs the emulator as a standalone vLLM-compatible server:
 *
 *   npx tsx dataplane/engines/sim/main.ts --port 8000 --model llama-3-8b --time-scale 10
 *
 * Flags: --port, --host, --model, --time-scale, --kv-capacity-tokens, --max-num-seqs, --seed,
 * --api-key, --kv-events-port (publish KV events over ZMQ like vLLM; vLLM's default port is 5557),
 * --config (a JSON file with any `sim` engine config fields; flags override it).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseConfig } from "../../lib/config-error";
import { createLogger } from "../../lib/log";
import { simEngineConfigSchema } from "./config";
import { startSimServer } from "./server";

function numberFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${value}`);
  return n;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string", default: "8000" },
      host: { type: "string", default: "127.0.0.1" },
      model: { type: "string" },
      "time-scale": { type: "string" },
      "kv-capacity-tokens": { type: "string" },
      "max-num-seqs": { type: "string" },
      seed: { type: "string" },
      "api-key": { type: "string" },
      "kv-events-port": { type: "string" },
      config: { type: "string" },
    },
    strict: true,
  });
  const fromFile = values.config ? (JSON.parse(readFileSync(values.config, "utf8")) as Record<string, unknown>) : {};
  const raw: Record<string, unknown> = { kind: "sim", model: "llama-3-8b", ...fromFile };
  if (values.model) raw.model = values.model;
  const overrides: Array<[string, string | undefined]> = [
    ["timeScale", values["time-scale"]],
    ["kvCapacityTokens", values["kv-capacity-tokens"]],
    ["maxNumSeqs", values["max-num-seqs"]],
    ["seed", values.seed],
  ];
  for (const [key, value] of overrides) {
    const n = numberFlag(key, value);
    if (n !== undefined) raw[key] = n;
  }
  const config = parseConfig(simEngineConfigSchema, raw, values.config ?? "command-line flags");
  const kvEventsPort = numberFlag("kvEventsPort", values["kv-events-port"]);
  // Like vLLM, one line per request under the request id it was given (X-Request-Id).
  const log = createLogger({ component: "engine", engine: "sim", model: config.model });
  const server = await startSimServer({
    log,
    port: Number(values.port),
    host: values.host,
    config,
    apiKey: values["api-key"],
    ...(kvEventsPort !== undefined ? { kvEvents: { port: kvEventsPort } } : {}),
  });
  const load = server.engine.load();
  log.info("sim_server_listening", { url: server.url, kvEvents: server.kvEventsEndpoint, timeScale: config.timeScale, kvCapacityTokens: load.kvCapacityTokens });
  const shutdown = () => {
    void server.close().then(() => process.exit(0));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
