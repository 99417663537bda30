/**
 * Validation of OpenAI generation requests, shared by the edge (which rejects bad input before it
 * costs a node anything) and the agent (which never trusts the wire). Only the fields Switchyard
 * acts on are checked; everything else (vLLM extensions such as `min_tokens`, `ignore_eos`,
 * `cache_salt`) passes through untouched.
 */
import { z } from "zod";
import { ApiError } from "./openai-error";

/** Largest `max_tokens` accepted; larger values are absurd for any model we serve. */
export const MAX_TOKENS_LIMIT = 1_000_000;

const textPart = z.looseObject({ type: z.literal("text"), text: z.string() });
// Other part kinds (images, audio, files) pass through to engines that know them; a "text" part
// must be a real one, or its text would reach the prompt renderer as anything at all.
const anyPart = z.looseObject({ type: z.string().refine((t) => t !== "text", "a text part needs a string 'text'") });
const messageContent = z.union([z.string(), z.array(z.union([textPart, anyPart])), z.null()]);

export const chatMessageSchema = z.looseObject({
  role: z.enum(["system", "developer", "user", "assistant", "tool", "function"]),
  content: messageContent.optional(),
  name: z.string().optional(),
});

const streamOptions = z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional();
const stop = z.union([z.string(), z.array(z.string()).max(16)]).nullable().optional();

/**
 * A token count. The limit is checked before integrality so that 1e308 is told the real limit, not
 * zod's safe-integer bound.
 */
const tokenCount = (min: number) => z.number().max(MAX_TOKENS_LIMIT).min(min).int();

const samplingFields = {
  model: z.string().min(1).max(256),
  stream: z.boolean().nullable().optional(),
  stream_options: streamOptions,
  max_tokens: tokenCount(1).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  n: z.literal(1).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  stop,
  user: z.string().max(256).optional(),
  min_tokens: tokenCount(0).optional(),
  ignore_eos: z.boolean().optional(),
};

export const chatCompletionRequestSchema = z.looseObject({
  ...samplingFields,
  messages: z.array(chatMessageSchema).min(1).max(4096),
  max_completion_tokens: tokenCount(1).nullable().optional(),
});

export const completionRequestSchema = z.looseObject({
  ...samplingFields,
  prompt: z.union([z.string(), z.array(z.string()).length(1), z.array(z.number().int().min(0)).min(1)]),
  echo: z.boolean().nullable().optional(),
});

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>;
export type CompletionRequest = z.infer<typeof completionRequestSchema>;
export type ChatMessage = z.infer<typeof chatMessageSchema>;
export type Endpoint = "chat" | "completions";
export type GenerationRequest = ChatCompletionRequest | CompletionRequest;

/** Turns a zod issue path into OpenAI's `param` notation: `messages[0].content`. */
export function paramPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

function valueAt(root: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let node = root;
  for (const part of path) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[part];
  }
  return node;
}

/** Validates a parsed JSON body; throws ApiError(400) naming the first bad field. */
export function validateGenerationRequest(endpoint: Endpoint, body: unknown): GenerationRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError(400, "The request body must be a JSON object.", { code: "invalid_body" });
  }
  const schema = endpoint === "chat" ? chatCompletionRequestSchema : completionRequestSchema;
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const param = issue ? paramPath(issue.path) : null;
    // zod 4 issues do not carry the input, so "missing" is read from the body itself.
    const missing = issue !== undefined && valueAt(body, issue.path) === undefined;
    const what = missing ? "is required" : `is invalid: ${issue?.message ?? "bad value"}`;
    throw new ApiError(400, `'${param ?? "body"}' ${what}.`, { param, code: missing ? "missing_required_parameter" : "invalid_value" });
  }
  return parsed.data;
}

/** The completion-token cap a request asks for (`max_completion_tokens` wins, as in OpenAI). */
export function requestedMaxTokens(req: GenerationRequest): number | undefined {
  const chatCap = (req as { max_completion_tokens?: number | null }).max_completion_tokens;
  return chatCap ?? req.max_tokens ?? undefined;
}

export function wantsStream(req: GenerationRequest): boolean {
  return req.stream === true;
}

export function wantsUsageInStream(req: GenerationRequest): boolean {
  return req.stream === true && req.stream_options?.include_usage === true;
}
