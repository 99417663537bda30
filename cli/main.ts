/**
 * `switchyard`: the operator CLI. Admin commands talk to the edge's /admin API
 * (SWITCHYARD_EDGE_URL + SWITCHYARD_ADMIN_TOKEN); `agent` runs a node agent, `cache-server` a KV
 * cache server, `bench` the benchmark toolkit.
 */
import { Command, CommanderError } from "commander";
import { ConfigError } from "../dataplane/lib/config-error";
import { registerAgentCommand } from "./commands/agent";
import { registerAdminCommands } from "./commands/admin";
import { registerBenchCommand } from "./commands/bench";
import { registerCacheServerCommand } from "./commands/cache-server";
import { CliError } from "./cli-error";

const program = new Command()
  .name("switchyard")
  .description("Switchyard: multi-tenant LLM edge router and data plane")
  .showHelpAfterError()
  .exitOverride();

registerAdminCommands(program);
registerAgentCommand(program);
registerCacheServerCommand(program);
registerBenchCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // Usage errors exit 2 like every other user-facing failure; help and --version exit 0.
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  if (err instanceof ConfigError || err instanceof CliError) {
    process.stderr.write(`switchyard: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
