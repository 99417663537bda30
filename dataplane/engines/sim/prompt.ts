/**
 * Prompts as vLLM builds them for Llama-3-8B-Instruct: chat messages through the Llama-3 chat
 * template (BOS, a header per message, content trimmed, `<|eot_id|>`, then the assistant header),
 * completions prompts with a BOS, token-id prompts as given.
 */
import type { ChatMessage, CompletionRequest, Endpoint, GenerationRequest, ChatCompletionRequest } from "../../../protocol/openai-request";
import { simTokenizer } from "./tokenizer";

function contentText(content: ChatMessage["content"]): string {
  if (content == null) return "";
  if (typeof content === "string") return content;
  return content.map((part) => (part.type === "text" && typeof (part as { text?: unknown }).text === "string" ? (part as { text: string }).text : "")).join("");
}

/** The Llama-3 instruct chat template with the generation prompt. */
export function renderChatTemplate(messages: readonly ChatMessage[]): string {
  let out = "<|begin_of_text|>";
  for (const m of messages) out += `<|start_header_id|>${m.role}<|end_header_id|>\n\n${contentText(m.content).trim()}<|eot_id|>`;
  return `${out}<|start_header_id|>assistant<|end_header_id|>\n\n`;
}

/** Prompt token ids of a validated request. */
export function promptTokens(endpoint: Endpoint, body: GenerationRequest): number[] {
  if (endpoint === "chat") return simTokenizer.encode(renderChatTemplate((body as ChatCompletionRequest).messages));
  const prompt = (body as CompletionRequest).prompt;
  if (typeof prompt === "string") return simTokenizer.encode(prompt, { bos: true });
  if (prompt.length === 1 && typeof prompt[0] === "string") return simTokenizer.encode(prompt[0], { bos: true });
  return prompt as number[];
}
