/**
 * A TCP proxy on loopback that can cut the line: while blocked, it refuses new connections and
 * drops those already open, as a partitioned network or a dead route would. Used between an agent
 * and the edge to lose the agent's heartbeats while everything else keeps running.
 */
import net from "node:net";

export interface FaultProxy {
  readonly url: string;
  /** Connections accepted and passed on since start. */
  readonly forwarded: number;
  block(): void;
  unblock(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let blocked = false;
  let forwarded = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (blocked) {
      client.destroy();
      return;
    }
    forwarded++;
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on("close", () => open.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get forwarded() {
      return forwarded;
    },
    block() {
      blocked = true;
      for (const s of open) s.destroy();
    },
    unblock() {
      blocked = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
