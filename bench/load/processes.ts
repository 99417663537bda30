/**
 * The processes of a load run: standalone emulator servers (the "engine" that requests can also
 * reach directly, for the overhead baseline), and the resident memory of everything this run
 * started — read from /proc by walking the process tree down from this process, so that other
 * work on the machine (other stacks, other wrangler instances) is never counted.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../../scripts/dev-stack";

export interface SimServer {
  url: string;
  process: ChildProcess;
}

/** Starts `dataplane/engines/sim/main.ts` on a port and waits for its /health. */
export async function startSimServer(opts: { port: number; model: string; maxNumSeqs: number; timeScale: number; logPath: string }): Promise<SimServer> {
  const log = createWriteStream(opts.logPath, { flags: "a" });
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "dataplane/engines/sim/main.ts"), "--port", String(opts.port), "--model", opts.model, "--max-num-seqs", String(opts.maxNumSeqs), "--time-scale", String(opts.timeScale)],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const url = `http://127.0.0.1:${opts.port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`sim server on ${opts.port} exited (${child.exitCode}); see ${opts.logPath}`);
    try {
      if ((await fetch(`${url}/health`)).ok) return { url, process: child };
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`sim server on ${opts.port} did not become healthy; see ${opts.logPath}`);
}

export function stopSimServer(s: SimServer): void {
  if (s.process.pid !== undefined && s.process.exitCode === null) {
    try {
      process.kill(-s.process.pid, "SIGTERM");
    } catch {
      // Already gone.
    }
  }
}

interface ProcInfo {
  pid: number;
  ppid: number;
  cmdline: string;
  rssBytes: number;
  fds: number;
}

function readProc(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(fields[1]);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
    let fds = 0;
    try {
      fds = readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      // Not ours to read, or gone.
    }
    return { pid, ppid, cmdline, rssBytes: rssKb * 1024, fds };
  } catch {
    return undefined; // Exited between listing and reading.
  }
}

/** Every process below `root` (not `root` itself), by walking parent links. */
export function descendants(root: number = process.pid): ProcInfo[] {
  const all = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map((d) => readProc(Number(d)))
    .filter((p): p is ProcInfo => p !== undefined);
  const children = new Map<number, ProcInfo[]>();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const out: ProcInfo[] = [];
  const stack = [root];
  while (stack.length > 0) {
    for (const c of children.get(stack.pop() as number) ?? []) {
      out.push(c);
      stack.push(c.pid);
    }
  }
  return out;
}

/** What a process is in the stack, from its command line. */
export function roleOf(cmdline: string): string {
  if (/workerd/.test(cmdline)) return "edge (workerd)";
  if (/wrangler/.test(cmdline)) return "edge (wrangler, node)";
  if (/switchyard\.mjs agent/.test(cmdline)) return "agents";
  if (/engines\/sim\/main\.ts/.test(cmdline)) return "engines";
  return "other";
}

/** Resident memory (bytes), open file descriptors and process ids by role (a new pid is a restart). */
export function usageByRole(root: number = process.pid): Record<string, { rssBytes: number; fds: number; pids: number[] }> {
  const out: Record<string, { rssBytes: number; fds: number; pids: number[] }> = {};
  for (const p of descendants(root)) {
    const u = (out[roleOf(p.cmdline)] ??= { rssBytes: 0, fds: 0, pids: [] });
    u.rssBytes += p.rssBytes;
    u.fds += p.fds;
    u.pids.push(p.pid);
  }
  return out;
}
