/** `switchyard agent --config agent.json`: runs a node agent until SIGINT/SIGTERM. */
import type { Command } from "commander";
import { CliError } from "../cli-error";

export function registerAgentCommand(program: Command): void {
  program
    .command("agent")
    .description("run a node agent: engines, signed inbound API, heartbeats to the edge")
    .requiredOption("-c, --config <file>", "agent config (JSON); env SWITCHYARD_* values override it (docs/operations.md)")
    .action(async (opts: { config: string }) => {
      // Loaded here, not at start-up: admin commands should not pay for the agent and its engines.
      const { loadAgentConfig } = await import("../../dataplane/agent/config");
      const { startAgent } = await import("../../dataplane/agent/agent");
      const { checkConfigFiles } = await import("../../dataplane/agent/config-files");
      const config = loadAgentConfig(opts.config);
      checkConfigFiles(config, opts.config);
      // A failure to start (an engine that cannot load, a port in use) is the operator's to fix:
      // one line saying what, not a stack trace.
      const agent = await startAgent(config).catch((err: unknown) => {
        throw new CliError(`the agent did not start: ${err instanceof Error ? err.message : String(err)}`);
      });
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
