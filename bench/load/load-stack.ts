/**
 * The stack the load benchmarks drive: standalone emulator servers (reachable without the edge too)
 * and, in front of each, a node agent with the `openai` adapter, behind wrangler dev serving a frozen
 * Worker bundle with the devtools inspector off (it costs loopback requests per streamed chunk).
 */
import { join } from "node:path";
import { type DevStack, freePort, startDevStack } from "../../scripts/dev-stack";
import { type SimServer, startSimServer, stopSimServer } from "./processes";

export interface LoadStackOptions {
  stateDir: string;
  model: string;
  nodes: number;
  /** Node ids are `${nodePrefix}-${i}`. */
  nodePrefix: string;
  /** The emulators' sequence cap. */
  maxNumSeqs: number;
  /** What each agent sends its engine at once (the edge's per-node limit follows it). */
  agentConcurrency: number;
  timeScale: number;
  log: (line: string) => void;
}

export interface LoadStack {
  stack: DevStack;
  engines: SimServer[];
  stop(): Promise<void>;
}

export async function startLoadStack(o: LoadStackOptions): Promise<LoadStack> {
  o.log(`starting ${o.nodes} emulator servers (time scale ${o.timeScale})`);
  const engines: SimServer[] = [];
  for (let i = 0; i < o.nodes; i++) {
    engines.push(await startSimServer({ port: await freePort(), model: o.model, maxNumSeqs: o.maxNumSeqs, timeScale: o.timeScale, logPath: join(o.stateDir, "logs", `engine-${i}.log`) }));
  }
  const stopEngines = () => {
    for (const e of engines) stopSimServer(e);
  };
  try {
    const stack = await startDevStack({
      stateDir: o.stateDir,
      model: o.model,
      frozenWorker: true,
      inspector: false,
      onStatus: o.log,
      agents: engines.map((e, i) => ({
        nodeId: `${o.nodePrefix}-${i}`,
        region: "local",
        engines: [{ kind: "openai" as const, model: o.model, url: e.url, maxConcurrency: o.agentConcurrency, connections: o.agentConcurrency, pollIntervalMs: 500 }],
      })),
    });
    return {
      stack,
      engines,
      async stop() {
        await stack.stop();
        stopEngines();
      },
    };
  } catch (err) {
    stopEngines();
    throw err;
  }
}
