/** Usage of one tenant for one model and hour, as stored in D1 and as read back by the usage APIs. */
export interface UsageCounts {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** Requests whose counts the edge estimated (the stream broke before the engine's usage). */
  estimatedRequests: number;
  /** Requests that ended in an error, a cancellation or a lost stream. */
  failedRequests: number;
}

export interface UsageTotals extends UsageCounts {
  model: string;
  /** Start of the hour (UTC), epoch ms. */
  hour: number;
}

export function emptyTotals(model: string, hour: number): UsageTotals {
  return { model, hour, requests: 0, promptTokens: 0, completionTokens: 0, cachedTokens: 0, estimatedRequests: 0, failedRequests: 0 };
}

export function addTotals<T extends UsageCounts>(into: T, add: UsageCounts): T {
  into.requests += add.requests;
  into.promptTokens += add.promptTokens;
  into.completionTokens += add.completionTokens;
  into.cachedTokens += add.cachedTokens;
  into.estimatedRequests += add.estimatedRequests;
  into.failedRequests += add.failedRequests;
  return into;
}
