/** Token usage as OpenAI reports it, plus how Switchyard learned it. */
export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** True when the stream broke before the engine's usage arrived and counts were derived from what was streamed. */
  estimated: boolean;
}

/** Reads OpenAI's usage object (chat or completions, streamed or not) into TokenUsage. */
export function readUsage(value: unknown): Omit<TokenUsage, "estimated"> | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const u = value as Record<string, unknown>;
  const prompt = u.prompt_tokens;
  const completion = u.completion_tokens;
  if (typeof prompt !== "number" || typeof completion !== "number") return undefined;
  const details = u.prompt_tokens_details as Record<string, unknown> | undefined | null;
  const cached = typeof details?.cached_tokens === "number" ? details.cached_tokens : 0;
  return { promptTokens: prompt, completionTokens: completion, cachedTokens: cached };
}
