/**
 * `npm start`: the whole path on this machine — the edge worker under wrangler dev, two node agents
 * with embedded llama.cpp engines (a small random-weight model is generated on first run, nothing
 * is downloaded), a demo tenant with a fresh key printed with ready-to-paste snippets. Ctrl-C stops
 * everything. State persists in .switchyard/dev (delete it to start over).
 */
import { join } from "node:path";
import { ROOT, startDevStack } from "./dev-stack";

const model = process.env.SWITCHYARD_DEMO_MODEL ?? "tiny-llama";
const modelPath = process.env.SWITCHYARD_MODEL_PATH;
const engine = { kind: "llamacpp" as const, model, sequences: 4, threads: 1, ...(modelPath ? { modelPath } : {}) };

const stack = await startDevStack({
  stateDir: join(ROOT, ".switchyard", "dev"),
  edgePort: Number(process.env.SWITCHYARD_EDGE_PORT ?? 8787),
  model,
  agents: [
    { nodeId: "node-a", region: "local", port: Number(process.env.SWITCHYARD_AGENT_A_PORT ?? 8801), engines: [engine] },
    { nodeId: "node-b", region: "local", port: Number(process.env.SWITCHYARD_AGENT_B_PORT ?? 8802), engines: [engine] },
  ],
  onStatus: (line) => process.stdout.write(`switchyard: ${line}\n`),
});

const base = `${stack.edgeUrl}/v1`;
process.stdout.write(`
Switchyard is serving an OpenAI-compatible API at ${base}
  tenant:  ${stack.tenantId}
  API key: ${stack.apiKey}
  model:   ${model}${modelPath ? "" : " (random weights: the text is noise, the serving path is real; set SWITCHYARD_MODEL_PATH=/path/to/model.gguf for real text)"}
  nodes:   ${[...stack.agents.values()].map((a) => `${a.spec.nodeId} (${a.url})`).join(", ")}
  admin:   export SWITCHYARD_EDGE_URL=${stack.edgeUrl} SWITCHYARD_ADMIN_TOKEN=${stack.adminToken}
  dashboard: ${stack.edgeUrl}/admin/dashboard (sign in with the admin token)
  logs:    ${join(".switchyard", "dev", "logs")}

Try it:

curl -N ${base}/chat/completions \\
  -H "Authorization: Bearer ${stack.apiKey}" -H "Content-Type: application/json" \\
  -d '{"model":"${model}","stream":true,"max_tokens":32,"messages":[{"role":"user","content":"Hello!"}]}'

// Node (npm i openai)
import OpenAI from "openai";
const client = new OpenAI({ baseURL: "${base}", apiKey: "${stack.apiKey}" });
const stream = await client.chat.completions.create({ model: "${model}", stream: true, max_tokens: 32,
  messages: [{ role: "user", content: "Hello!" }] });
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? "");

Press Ctrl-C to stop.
`);

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  process.stdout.write("\nswitchyard: stopping agents and the edge worker\n");
  await stack.stop();
  process.exit(0);
};
process.on("SIGINT", () => void shutdown());
process.on("SIGTERM", () => void shutdown());
