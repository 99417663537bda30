/** The machine a benchmark ran on, as its results record it (read medians against this). */
import os from "node:os";

export interface HostInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  /** Taken when called: call it at the end of a run, so that it shows what shared the box meanwhile. */
  loadAverageAtEnd: number[];
}

export function hostInfo(): HostInfo {
  return {
    cpu: os.cpus()[0]?.model ?? "?",
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    loadAverageAtEnd: os.loadavg().map((x) => Number(x.toFixed(2))),
  };
}
