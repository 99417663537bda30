/**
 * The operator's admin commands (`tenants`, `keys`, `nodes`, `models`, `regions`): thin wrappers over the
 * edge's /admin API. Each takes --edge-url / SWITCHYARD_EDGE_URL, --admin-token /
 * SWITCHYARD_ADMIN_TOKEN and --json; usage, validation and API errors exit 2.
 */
import type { Command } from "commander";
import { finishAdminCommands } from "../admin-command";
import { registerKeyCommands } from "./keys";
import { registerModelCommands } from "./models";
import { registerNodeCommands } from "./nodes";
import { registerRegionCommands } from "./regions";
import { registerTenantCommands } from "./tenants";

export function registerAdminCommands(program: Command): void {
  const before = new Set(program.commands);
  registerTenantCommands(program);
  registerKeyCommands(program);
  registerNodeCommands(program);
  registerModelCommands(program);
  registerRegionCommands(program);
  for (const cmd of program.commands) if (!before.has(cmd)) finishAdminCommands(cmd);
}
