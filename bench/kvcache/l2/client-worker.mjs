// Worker-thread entry of one benchmark client thread (client-worker.ts), through tsx's loader; a
// bundled build of the benchmark puts a compiled client-worker.mjs beside its bundle instead.
import { register } from "tsx/esm/api";

register();
await import("./client-worker.ts");
