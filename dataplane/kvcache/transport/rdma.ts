/**
 * The RDMA transport's interface — no implementation (these machines have no RDMA NIC; the design,
 * its failure model and why it is not built here are in docs/kv-rdma.md).
 *
 * Shape (libibverbs underneath, through a native addon):
 * - one RdmaContext per NIC port (ibv_open_device, a protection domain);
 * - values live in registered memory: the server registers its value slabs once at start-up, the
 *   client registers a pool of staging slabs (or, with GPUDirect, engine buffers) — registration is
 *   expensive (pinning, IOMMU), so it never happens per request;
 * - one reliable-connected queue pair per (client, server) pair and NIC, set up over the TCP
 *   control channel (which also carries PREFIX, STATS, and the PUT/GET metadata below);
 * - PUT: the client asks the server for a slot over TCP (PUT_START: key, length → addr, rkey,
 *   lease), RDMA-WRITEs the value into it, then PUT_END with the XXH64 of key and value (the object becomes
 *   visible only then: Mooncake's put start/end);
 * - GET: the client asks for the key's location over TCP (LOOKUP: key → addr, rkey, length,
 *   checksum, lease; batched for a whole prefix), RDMA-READs it into a local slab, verifies the
 *   checksum, then releases the lease (the server does not evict or reuse a leased slot);
 * - completions are polled from a completion queue; a failed work request moves the queue pair to
 *   the error state and the client treats every outstanding request on it as a miss.
 */
import type { Endpoint } from "./transport";

/** A NIC port: `mlx5_0` port 1, RoCE (Ethernet) or InfiniBand. */
export interface RdmaDeviceSpec {
  name: string;
  port: number;
  linkLayer: "InfiniBand" | "Ethernet";
  /** RoCE v2 GID index (usually 3 for IPv4 RoCE v2). */
  gidIndex?: number;
}

/** Memory registered with the NIC (ibv_reg_mr): addressable by local and, with rkey, remote work requests. */
export interface MemoryRegion {
  /** The registered bytes. Must stay alive (and pinned) until deregister(). */
  readonly buffer: Uint8Array;
  /** Virtual address of buffer[0] as the NIC sees it. */
  readonly addr: bigint;
  readonly lkey: number;
  /** Given to peers so they can READ/WRITE this region. */
  readonly rkey: number;
  deregister(): void;
}

/** A window of a peer's registered memory, as told over the control channel. */
export interface RemoteSlot {
  addr: bigint;
  rkey: number;
  length: number;
}

/** A window of local registered memory. */
export interface LocalSlice {
  region: MemoryRegion;
  offset: number;
  length: number;
}

/** Fixed-size slabs carved out of a few large registered regions (a buddy or size-class allocator). */
export interface RegisteredSlabPool {
  /** A slice of at least `length` bytes, or undefined when the pool is exhausted (the caller falls back to TCP or skips). */
  acquire(length: number): LocalSlice | undefined;
  release(slice: LocalSlice): void;
  readonly capacityBytes: number;
  readonly usedBytes: number;
}

export type WorkCompletionStatus = "success" | "local-protection-error" | "remote-access-error" | "remote-operation-error" | "retry-exceeded" | "rnr-retry-exceeded" | "flushed" | "other";

export interface WorkCompletion {
  /** The id given when posting. */
  wrId: bigint;
  status: WorkCompletionStatus;
  opcode: "rdma-write" | "rdma-read" | "send" | "recv";
  byteLength: number;
}

/** A completion queue, polled (busy or after a completion-channel event). */
export interface CompletionQueue {
  /** Up to `max` completions that are ready (never blocks). */
  poll(max: number): WorkCompletion[];
  /** Resolves when at least one completion is ready (completion channel + epoll, no busy loop). */
  whenReady(): Promise<void>;
  close(): void;
}

/** A reliable-connected queue pair to one server. */
export interface QueuePair {
  readonly peer: Endpoint;
  readonly state: "init" | "ready" | "error" | "closed";
  /** One-sided write of local bytes into the peer's slot. `signaled: false` saves a completion (signal every Nth). */
  postWrite(local: LocalSlice, remote: RemoteSlot, wrId: bigint, signaled: boolean): void;
  /** One-sided read of the peer's slot into local bytes. */
  postRead(local: LocalSlice, remote: RemoteSlot, wrId: bigint): void;
  readonly completions: CompletionQueue;
  close(): void;
}

export interface RdmaContext {
  readonly device: RdmaDeviceSpec;
  registerMemory(buffer: Uint8Array): MemoryRegion;
  createSlabPool(totalBytes: number, slabBytes: number): RegisteredSlabPool;
  /**
   * Connects a queue pair to a server: exchanges QP number, LID/GID and PSN over the server's TCP
   * control channel (the EXCHANGE op of docs/kv-rdma.md), then moves the QP INIT → RTR → RTS.
   */
  connect(server: Endpoint, opts: { maxOutstandingReads: number; timeoutMs: number }): Promise<QueuePair>;
  close(): void;
}

export interface RdmaTransportFactory {
  /** Opens the NIC; rejects where there is no RDMA device (as on these machines). */
  open(device: RdmaDeviceSpec): Promise<RdmaContext>;
}

/** There is no implementation in this build: docs/kv-rdma.md says why and what one needs. */
export const rdmaTransport: RdmaTransportFactory = {
  open: (device) => Promise.reject(new Error(`RDMA transport not built (device ${device.name}): see docs/kv-rdma.md; use the TCP transport`)),
};
