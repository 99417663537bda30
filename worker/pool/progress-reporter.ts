/**
 * Output progress of streaming requests, reported to their pool objects so VTC charges long answers
 * as they are generated. Reports from every stream in this isolate are batched per pool and sent
 * at most once a second, inside the waitUntil of the request that started the batch: one call per
 * pool per second per isolate, however many streams are running.
 */
const FLUSH_MS = 1_000;

interface Batch {
  updates: Map<string, number>;
}

const batches = new Map<string, Batch>();

export interface ProgressSink {
  progress(updates: Array<[string, number]>): Promise<void>;
}

export function reportProgress(ctx: { waitUntil(promise: Promise<unknown>): void }, pool: string, sink: ProgressSink, requestId: string, outputTokens: number): void {
  let batch = batches.get(pool);
  if (!batch) {
    const created: Batch = { updates: new Map() };
    batches.set(pool, created);
    batch = created;
    ctx.waitUntil(
      new Promise<void>((resolve) => {
        setTimeout(() => {
          batches.delete(pool);
          sink
            .progress([...created.updates])
            .catch(() => {
              // Progress is an optimisation of accounting timing: release settles the real usage.
            })
            .finally(resolve);
        }, FLUSH_MS);
      }),
    );
  }
  batch.updates.set(requestId, outputTokens);
}
