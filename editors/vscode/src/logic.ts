// The extension's own logic, free of any `vscode` import so that it runs
// (and is unit-tested) under plain node: `node --test test/logic.test.mjs`.

/** The command the server puts on every completion item. */
export const ACCEPT_COMMAND = "weft.completion.accepted";

/** The agent commands of the command palette, in palette order. */
export const AGENT_ACTIONS = ["plan", "implement", "test", "review", "council", "explain", "status", "cancel"] as const;
export type AgentAction = (typeof AGENT_ACTIONS)[number];

export interface LspPosition {
  line: number;
  character: number;
}
export interface LspRange {
  start: LspPosition;
  end: LspPosition;
}
export interface LspCommand {
  title: string;
  command: string;
  arguments?: unknown[];
}

/** An inline completion item as it comes over the wire (LSP 3.18). */
export interface WireInlineItem {
  insertText: string | { kind: "snippet"; value: string };
  filterText?: string;
  range?: LspRange;
  command?: LspCommand;
}

/** An inline completion item, normalized. */
export interface InlineItem {
  insertText: string;
  range?: LspRange;
  command?: LspCommand;
  /** The item exactly as the server sent it (echoed in notifications). */
  wire: WireInlineItem;
}

/**
 * Normalizes the result of `textDocument/inlineCompletion`: `null`, an array
 * of items or `{ items }`; snippet strings become their text; empty
 * suggestions are dropped.
 */
export function normalizeInlineResult(result: unknown): InlineItem[] {
  if (result === null || result === undefined) return [];
  const list: unknown = Array.isArray(result) ? result : (result as { items?: unknown }).items;
  if (!Array.isArray(list)) return [];
  const items: InlineItem[] = [];
  for (const raw of list) {
    if (raw === null || typeof raw !== "object") continue;
    const wire = raw as WireInlineItem;
    const text = typeof wire.insertText === "string" ? wire.insertText : wire.insertText?.value;
    if (typeof text !== "string" || text.length === 0) continue;
    items.push({ insertText: text, range: wire.range, command: wire.command, wire });
  }
  return items;
}

/** The arguments of `weft lsp`. */
export function serverArgs(model: string | undefined): string[] {
  const args = ["lsp"];
  if (model && model.trim() !== "") args.push("--model", model.trim());
  return args;
}

/** The environment of the server: the editor's, plus `extra`. */
export function serverEnv(base: Record<string, string | undefined>, extra: Record<string, unknown> | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(base)) if (value !== undefined) env[key] = value;
  for (const [key, value] of Object.entries(extra ?? {})) {
    if (value === null || value === undefined) continue;
    env[key] = String(value);
  }
  return env;
}

/** `initializationOptions` of the language client. */
export function initializationOptions(telemetryEnabled: boolean): Record<string, unknown> {
  return { client: "vscode", telemetry: { enabled: telemetryEnabled } };
}

/** Params of `textDocument/didShowCompletion`. */
export function didShowParams(item: InlineItem): { item: WireInlineItem } {
  return { item: item.wire };
}

/**
 * Params of `textDocument/didPartiallyAcceptCompletion`. VS Code passes
 * either a number (older API) or `{ kind, acceptedLength }`.
 */
export function partialAcceptParams(
  item: InlineItem,
  info: number | { acceptedLength?: number } | undefined,
): { item: WireInlineItem; acceptedLength: number } | undefined {
  const length = typeof info === "number" ? info : info?.acceptedLength;
  if (typeof length !== "number" || !Number.isFinite(length) || length <= 0) return undefined;
  return { item: item.wire, acceptedLength: Math.min(Math.floor(length), item.insertText.length) };
}

/** A command's title, falling back to a generic one. */
export function acceptCommandOf(item: InlineItem): LspCommand | undefined {
  const command = item.command;
  if (!command || typeof command.command !== "string") return undefined;
  return { title: command.title ?? "accept", command: command.command, arguments: command.arguments ?? [] };
}

/** What the agent commands send: the file, the selection and its text. */
export interface AgentContext {
  uri?: string;
  languageId?: string;
  selection?: LspRange;
  selectedText?: string;
  workspaceFolder?: string;
}

/** `workspace/executeCommand` params of `weft.agent.<action>`. */
export function agentCommandParams(
  action: AgentAction,
  context: AgentContext,
  workDoneToken?: string,
): { command: string; arguments: unknown[]; workDoneToken?: string } {
  const argument: Record<string, unknown> = {};
  if (context.uri) argument.uri = context.uri;
  if (context.languageId) argument.languageId = context.languageId;
  if (context.selection) argument.range = context.selection;
  if (context.selectedText !== undefined && context.selectedText !== "") argument.text = context.selectedText;
  if (context.workspaceFolder) argument.workspaceFolder = context.workspaceFolder;
  const params: { command: string; arguments: unknown[]; workDoneToken?: string } = {
    command: `weft.agent.${action}`,
    arguments: [argument],
  };
  if (workDoneToken) params.workDoneToken = workDoneToken;
  return params;
}

/** Whether the server advertises a command (its `executeCommandProvider`). */
export function serverHasCommand(capabilities: unknown, command: string): boolean {
  const commands = (capabilities as { executeCommandProvider?: { commands?: unknown } } | undefined)?.executeCommandProvider
    ?.commands;
  return Array.isArray(commands) && commands.includes(command);
}

/** Drops from the server's command list those the extension registers itself. */
export function commandsForClient(commands: string[]): string[] {
  return commands.filter((c) => c !== ACCEPT_COMMAND && !c.startsWith("weft.agent."));
}

/** A result of an agent command as text for the output channel. */
export function formatAgentResult(action: AgentAction, result: unknown): string {
  if (result === null || result === undefined) return `weft.agent.${action}: done`;
  if (typeof result === "string") return result;
  const r = result as { message?: unknown; text?: unknown; markdown?: unknown };
  for (const key of ["markdown", "text", "message"] as const) {
    if (typeof r[key] === "string") return r[key] as string;
  }
  return JSON.stringify(result, null, 2);
}

/** `$/progress` values (work-done progress). */
export type WorkDoneValue =
  | { kind: "begin"; title: string; message?: string; percentage?: number; cancellable?: boolean }
  | { kind: "report"; message?: string; percentage?: number }
  | { kind: "end"; message?: string };

/**
 * Folds `$/progress` into what `vscode.window.withProgress` wants: an
 * increment (it adds them up) and a message.
 */
export class ProgressTracker {
  private last = 0;
  ended = false;
  title?: string;
  update(value: WorkDoneValue): { message?: string; increment?: number } {
    const out: { message?: string; increment?: number } = {};
    if (value.kind === "begin") this.title = value.title;
    if (value.kind === "end") this.ended = true;
    if (value.message !== undefined) out.message = value.message;
    const pct = value.kind === "end" ? 100 : value.percentage;
    if (typeof pct === "number" && pct > this.last) {
      out.increment = pct - this.last;
      this.last = pct;
    }
    return out;
  }
}

/** The `weft/status` notification. */
export interface WeftStatus {
  model?: string;
  health?: "loading" | "ready" | "error" | string;
  latencyMs?: number;
  message?: string;
}

/** What the status bar shows. */
export interface StatusView {
  text: string;
  tooltip: string;
  error: boolean;
}

/** A model path or name shortened for the status bar. */
export function modelLabel(model: string | undefined): string {
  if (!model) return "no model";
  const base = model.split(/[\\/]/).pop() ?? model;
  return base.replace(/\.gguf$/i, "");
}

/** The status bar's state, fed by `weft/status`, errors and completions. */
export class StatusState {
  model?: string;
  health: string = "starting";
  latencyMs?: number;
  lastError?: string;
  accepted = 0;

  onStatus(status: WeftStatus): void {
    if (status.model) this.model = status.model;
    if (status.health) this.health = status.health;
    if (typeof status.latencyMs === "number") this.latencyMs = status.latencyMs;
    if (status.health === "error" && status.message) this.lastError = status.message;
    if (status.health === "ready" && status.message === undefined && typeof status.latencyMs === "number") {
      // A completion worked: an earlier error is history.
      this.lastError = undefined;
    }
  }

  /** `window/showMessage` with type Error (1) or a failed request. */
  onError(message: string): void {
    this.health = "error";
    this.lastError = message;
  }

  onLatency(ms: number): void {
    this.latencyMs = ms;
    if (this.health !== "error") this.health = "ready";
  }

  view(): StatusView {
    const name = modelLabel(this.model);
    const icon = this.health === "error" ? "$(error)" : this.health === "ready" ? "$(sparkle)" : "$(sync~spin)";
    let text = `${icon} Weft`;
    if (this.model) text += `: ${name}`;
    if (this.health === "ready" && this.latencyMs !== undefined) text += ` · ${formatLatency(this.latencyMs)}`;
    else if (this.health === "loading" || this.health === "starting") text += ` · ${this.health}`;
    else if (this.health === "error") text += " · error";
    const lines = [`Model: ${this.model ?? "(not reported yet)"}`, `Health: ${this.health}`];
    if (this.latencyMs !== undefined) lines.push(`Last completion: ${formatLatency(this.latencyMs)}`);
    if (this.accepted > 0) lines.push(`Accepted this session: ${this.accepted}`);
    if (this.lastError) lines.push(`Last error: ${this.lastError}`);
    return { text, tooltip: lines.join("\n"), error: this.health === "error" };
  }
}

export function formatLatency(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "?";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}
