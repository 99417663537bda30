/**
 * Entry of the bundled `switchyard cache-server` that device-bundle.sh builds for hosts without
 * this checkout: the CLI with only the cache-server command (no admin commands, no engines).
 */
import { Command } from "commander";
import { registerCacheServerCommand } from "../../../cli/commands/cache-server";

const program = new Command("switchyard");
registerCacheServerCommand(program);
await program.parseAsync(process.argv);
