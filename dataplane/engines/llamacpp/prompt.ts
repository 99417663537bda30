/**
 * Requests → prompt tokens. Chat messages go through the chat wrapper node-llama-cpp resolves for
 * the model (its Jinja template or a matching built-in format; "General" for a model without one),
 * so a real GGUF gets its own chat format. Rendering is deterministic: chats that share their first
 * messages share a token prefix, which is what makes KV reuse work.
 */
import { LlamaText, resolveChatWrapper, type ChatHistoryItem, type ChatWrapper, type LlamaModel, type Token } from "node-llama-cpp";
import type { ChatMessage, CompletionRequest } from "../../../protocol/openai-request";
import { ApiError } from "../../../protocol/openai-error";

export interface RenderedPrompt {
  tokens: Token[];
  /** End-of-turn strings of the chat format (hidden stop strings; chat only). */
  stopTexts: string[];
  /** End-of-turn tokens of the chat format besides the model's end-of-generation tokens. */
  stopTokens: Token[];
}

/** Text of an OpenAI message content: a string, text parts concatenated, or nothing. */
export function messageText(content: ChatMessage["content"]): string {
  if (content == null) return "";
  if (typeof content === "string") return content;
  let out = "";
  for (const part of content) {
    if (part.type === "text" && typeof (part as { text?: unknown }).text === "string") out += (part as { text: string }).text;
  }
  return out;
}

/** OpenAI messages → node-llama-cpp chat history, ending with an (open) model turn to complete. */
export function toChatHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  for (const m of messages) {
    const text = messageText(m.content);
    switch (m.role) {
      case "system":
      case "developer":
        history.push({ type: "system", text });
        break;
      case "assistant":
        history.push({ type: "model", response: text ? [text] : [] });
        break;
      default: // user, tool, function: input the model reads
        history.push({ type: "user", text });
    }
  }
  // A trailing assistant message is a prefill the model continues; otherwise open a new turn.
  if (history.at(-1)?.type !== "model") history.push({ type: "model", response: [] });
  return history;
}

export class PromptRenderer {
  readonly chatWrapper: ChatWrapper;
  private readonly vocabSize: number;

  /**
   * `chatFormat: "general"` forces node-llama-cpp's General format; "auto" resolves it from the
   * model's template, name and architecture.
   */
  constructor(
    private readonly model: LlamaModel,
    opts: { chatFormat?: "auto" | "general" } = {},
  ) {
    this.chatWrapper = resolveChatWrapper(model, { type: opts.chatFormat ?? "auto", warningLogs: false });
    this.vocabSize = modelVocabSize(model);
  }

  get chatFormat(): string {
    return this.chatWrapper.wrapperName;
  }

  chat(messages: readonly ChatMessage[]): RenderedPrompt {
    const state = this.chatWrapper.generateContextState({ chatHistory: toChatHistory(messages) });
    const tokens = state.contextText.tokenize(this.model.tokenizer);
    const stopTexts: string[] = [];
    const stopTokens: Token[] = [];
    for (const trigger of state.stopGenerationTriggers) {
      if (trigger.values.every((v) => typeof v === "string")) {
        const text = trigger.values.join("");
        if (text) stopTexts.push(text);
        continue;
      }
      const triggerTokens = LlamaText(trigger).tokenize(this.model.tokenizer);
      if (triggerTokens.length === 1 && !this.model.isEogToken(triggerTokens[0])) stopTokens.push(triggerTokens[0]!);
    }
    return { tokens, stopTexts, stopTokens };
  }

  completion(prompt: CompletionRequest["prompt"]): RenderedPrompt {
    if (Array.isArray(prompt) && prompt.length > 0 && typeof prompt[0] === "number") {
      const ids = prompt as number[];
      const bad = ids.findIndex((t) => t >= this.vocabSize);
      if (bad >= 0) throw new ApiError(400, `Token id ${ids[bad]} is out of vocabulary (size ${this.vocabSize}).`, { param: `prompt[${bad}]`, code: "invalid_value" });
      return { tokens: ids.slice() as Token[], stopTexts: [], stopTokens: [] };
    }
    const text = typeof prompt === "string" ? prompt : String(prompt[0] ?? "");
    const bos = this.model.tokens.bos;
    const tokens = [...(bos != null && this.model.tokens.shouldPrependBosToken ? [bos] : []), ...this.model.tokenize(text, true)];
    if (tokens.length === 0) throw new ApiError(400, "The prompt is empty.", { param: "prompt", code: "invalid_value" });
    return { tokens, stopTexts: [], stopTokens: [] };
  }
}

/** Vocabulary size from the GGUF metadata (the token list, or the architecture's vocab_size). */
export function modelVocabSize(model: LlamaModel): number {
  const metadata = model.fileInfo.metadata as unknown as Record<string, Record<string, unknown> | undefined>;
  const tokens = (metadata.tokenizer?.ggml as { tokens?: unknown[] } | undefined)?.tokens;
  if (Array.isArray(tokens) && tokens.length > 0) return tokens.length;
  const arch = metadata[String(model.fileInfo.metadata.general.architecture)];
  const n = arch?.vocab_size;
  if (typeof n === "number" && n > 0) return n;
  throw new Error("Cannot determine the model's vocabulary size from its GGUF metadata.");
}

/** Every end-of-generation token of the model (EOS, EOT and the like). */
export function endOfGenerationTokens(model: LlamaModel, vocabSize = modelVocabSize(model)): Token[] {
  const out: Token[] = [];
  for (let t = 0; t < vocabSize; t++) if (model.isEogToken(t as Token)) out.push(t as Token);
  return out;
}
