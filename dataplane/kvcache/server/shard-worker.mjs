// Worker-thread entry of one cache-server shard (sharded-server.ts). Runs the TypeScript through
// tsx's loader, like bin/switchyard.mjs; a bundled build puts a compiled shard-worker.mjs here instead.
import { register } from "tsx/esm/api";

register();
await import("./shard-worker.ts");
