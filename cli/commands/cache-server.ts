/** `switchyard cache-server`: runs an L2 KV cache server until SIGINT/SIGTERM (docs/kv-cache.md). */
import type { Command } from "commander";
import { ConfigError } from "../../dataplane/lib/config-error";
import { CliError } from "../cli-error";

interface CacheServerFlags {
  host: string;
  port: string;
  capacity: string;
  policy: string;
  metricsPort: string;
  metricsHost?: string;
  maxValue: string;
  maxConnections: string;
  verifyPuts?: boolean;
  shards: string;
}

function integer(flag: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new CliError(`${flag} must be a whole number, got '${text}'`);
  return Number(text);
}

export function registerCacheServerCommand(program: Command): void {
  program
    .command("cache-server")
    .description("run an L2 KV cache server: KV chunks in memory for the node agents of a region")
    .option("--host <addr>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "data port (the L2 protocol)", "7400")
    .option("--capacity <size>", "memory for values, e.g. 8GiB, 512MiB, 64GB", "8GiB")
    .option("--policy <name>", "eviction policy: lru or s3fifo", "lru")
    .option("--metrics-port <n>", "Prometheus /metrics port (0 = any free port, 'off' = none)", "9400")
    .option("--metrics-host <addr>", "address for /metrics (default: --host)")
    .option("--max-value <size>", "largest value accepted", "128MiB")
    .option("--max-connections <n>", "connections beyond this are refused", "1024")
    .option("--shards <n>", "worker threads, each with capacity/n of the values on its own port (--port, --port+1, ...); clients need only --port", "1")
    .option("--verify-puts", "recompute every PUT's XXH64 checksum and refuse mismatches (readers verify every GET either way)")
    .addHelpText(
      "after",
      `
Example:
  switchyard cache-server --host 0.0.0.0 --port 7400 --capacity 64GiB --policy s3fifo --metrics-port 9400

  switchyard cache-server --host 0.0.0.0 --port 7400 --capacity 64GiB --shards 8   # ports 7400-7407

Agents list the server as host:port in their L2 config ("servers": ["10.0.0.7:7400"]); a sharded
server is still listed once, by --port: clients ask it for the other shards' ports.
Sizes: KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024.`,
    )
    .action(async (flags: CacheServerFlags) => {
      // Loaded here: admin commands should not pay for the server's imports.
      const { startCacheServer } = await import("../../dataplane/kvcache/server/sharded-server");
      const { parseByteSize } = await import("../../dataplane/kvcache/server/config");
      const size = (flag: string, text: string) => {
        try {
          return parseByteSize(text);
        } catch (err) {
          throw new CliError(`${flag}: ${(err as Error).message}`);
        }
      };
      const metricsOff = flags.metricsPort.trim().toLowerCase() === "off";
      if (!["lru", "s3fifo"].includes(flags.policy)) throw new CliError(`--policy must be lru or s3fifo, got '${flags.policy}'`);
      const server = await startCacheServer({
        host: flags.host,
        port: integer("--port", flags.port),
        capacityBytes: size("--capacity", flags.capacity),
        policy: flags.policy as "lru" | "s3fifo",
        metricsPort: metricsOff ? null : integer("--metrics-port", flags.metricsPort),
        metricsHost: flags.metricsHost,
        maxValueBytes: size("--max-value", flags.maxValue),
        maxConnections: integer("--max-connections", flags.maxConnections),
        verifyPutChecksums: flags.verifyPuts === true,
        shards: integer("--shards", flags.shards),
      }).catch((err: unknown) => {
        if (err instanceof ConfigError) {
          // Name the flag, not the config field.
          const flagOf: Record<string, string> = { port: "--port", host: "--host", capacityBytes: "--capacity", policy: "--policy", metricsPort: "--metrics-port", metricsHost: "--metrics-host", maxValueBytes: "--max-value", maxConnections: "--max-connections", shards: "--shards" };
          throw new CliError(err.message.replace(/^ {2}(\w+):/gm, (m, field: string) => (flagOf[field] ? `  ${flagOf[field]}:` : m)).replace("cache-server options", "flags"));
        }
        const e = err as NodeJS.ErrnoException;
        if (e.code === "EADDRINUSE" || e.code === "EACCES" || e.code === "EADDRNOTAVAIL") throw new CliError(`cannot listen: ${e.message}`);
        if (err instanceof RangeError) throw new CliError(err.message);
        throw err;
      });
      const shutdown = () => {
        server.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once("SIGINT", shutdown);
      process.once("SIGTERM", shutdown);
    });
}
