/** `switchyard agent --config agent.json`: runs a node agent until SIGINT/SIGTERM. */
import type { Command } from "commander";
import { loadAgentConfig } from "../../dataplane/agent/config";
import { startAgent } from "../../dataplane/agent/agent";

export function registerAgentCommand(program: Command): void {
  program
    .command("agent")
    .description("run a node agent: engines, signed inbound API, heartbeats to the edge")
    .requiredOption("-c, --config <file>", "agent config (JSON); env SWITCHYARD_* values override it (docs/operations.md)")
    .action(async (opts: { config: string }) => {
      const config = loadAgentConfig(opts.config);
      const agent = await startAgent(config);
      const shutdown = (signal: string) => {
        process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), level: "info", component: "agent", node: agent.nodeId, event: "shutdown", signal })}\n`);
        agent.stop({ leaving: true }).then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once("SIGINT", () => shutdown("SIGINT"));
      process.once("SIGTERM", () => shutdown("SIGTERM"));
    });
}
