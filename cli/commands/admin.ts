import type { Command } from "commander";

/** Placeholder until the admin commands land (tenants, keys, nodes, models). */
export function registerAdminCommands(_program: Command): void {}
