// The extension's own logic, free of any `vscode` import so that it runs
// (and is unit-tested) under plain node: `node --test test/logic.test.mjs`.

/** The command the server puts on every completion item. */
export const ACCEPT_COMMAND = "weft.completion.accepted";

/** The agent commands of the command palette, in palette order. */
export const AGENT_ACTIONS = ["plan", "implement", "test", "review", "council", "explain", "status", "cancel", "resume"] as const;
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

/** The notification for a suggestion the user dismissed (Escape). */
export const DISMISS_NOTIFICATION = "weft/didDismissCompletion";

/**
 * The suggestion on screen, for `weft/didDismissCompletion`: set when items
 * are offered, cleared when one is accepted; `dismiss()` gives the params
 * once.
 */
export class OfferedSuggestion {
  private item?: InlineItem;

  offer(items: InlineItem[]): void {
    this.item = items[0];
  }

  accepted(): void {
    this.item = undefined;
  }

  dismiss(): { item: WireInlineItem } | undefined {
    const item = this.item;
    this.item = undefined;
    return item ? { item: item.wire } : undefined;
  }
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
  /** What `plan` and `implement` are to do. */
  instruction?: string;
  /** For `status` and `cancel`. */
  runId?: string;
}

/** The workflows that need an instruction (the others work on a selection). */
export const INSTRUCTION_ACTIONS: readonly AgentAction[] = ["plan", "implement"];

/** The actions that start a run (the others ask about runs, or carry a waiting one on). */
export function isWorkflow(action: AgentAction): boolean {
  return action !== "status" && action !== "cancel" && action !== "resume";
}

/**
 * An instruction found in the selection: the text after the first `TODO` or
 * `FIXME` (the server's code actions do the same), else undefined.
 */
export function instructionFromText(text: string | undefined): string | undefined {
  const match = /\b(?:TODO|FIXME)\b[:\s]*(.*)/.exec(text ?? "");
  const instruction = match?.[1]?.trim();
  return instruction ? instruction : undefined;
}

/**
 * The context a server code action carries (`{ uri, range, instruction? }`,
 * docs/lsp-extensions.md), or undefined when the command came from the
 * palette (no argument).
 */
export function codeActionContext(argument: unknown): AgentContext | undefined {
  if (!argument || typeof argument !== "object") return undefined;
  const a = argument as { uri?: unknown; range?: unknown; instruction?: unknown; runId?: unknown };
  if (typeof a.uri !== "string" && typeof a.runId !== "string") return undefined;
  const context: AgentContext = {};
  if (typeof a.uri === "string") context.uri = a.uri;
  if (a.range && typeof a.range === "object") context.selection = a.range as LspRange;
  if (typeof a.instruction === "string" && a.instruction.trim() !== "") context.instruction = a.instruction;
  if (typeof a.runId === "string") context.runId = a.runId;
  return context;
}

/** `workspace/executeCommand` params of `weft.agent.<action>`. */
export function agentCommandParams(
  action: AgentAction,
  context: AgentContext,
  workDoneToken?: string,
): { command: string; arguments: unknown[]; workDoneToken?: string } {
  const argument: Record<string, unknown> = {};
  if (isWorkflow(action)) {
    if (context.instruction) argument.instruction = context.instruction;
    if (context.uri) argument.uri = context.uri;
    if (context.languageId) argument.languageId = context.languageId;
    if (context.selection) argument.range = context.selection;
    if (context.selectedText !== undefined && context.selectedText !== "") argument.text = context.selectedText;
    if (context.workspaceFolder) argument.workspaceFolder = context.workspaceFolder;
  } else if (context.runId) {
    argument.runId = context.runId;
  }
  const params: { command: string; arguments: unknown[]; workDoneToken?: string } = {
    command: `weft.agent.${action}`,
    arguments: [argument],
  };
  if (workDoneToken && isWorkflow(action)) params.workDoneToken = workDoneToken;
  return params;
}

/** A run that ended `waiting_for_input`: its id and what it asks. */
export interface WaitingRun {
  runId: string;
  workflow: string;
  question: string;
  /** The question asks for a selection: send the editor's along. */
  wantsSelection: boolean;
}

function waiting(runId: string, workflow: string | undefined, question: string): WaitingRun {
  return { runId, workflow: workflow ?? "agent", question, wantsSelection: /\bselect/i.test(question) };
}

/** The waiting run of a command's result, or undefined. */
export function waitingRun(result: unknown): WaitingRun | undefined {
  if (!isReport(result) || result.state !== "waiting_for_input" || typeof result.runId !== "string") return undefined;
  return waiting(result.runId, result.workflow, result.question ?? result.summary ?? "");
}

/**
 * `weft.agent.resume` params (docs/lsp-extensions.md): the waiting run, the
 * user's answer, and the selection when the run asked for one. Undefined
 * when there is nothing to send.
 */
export function resumeParams(
  run: WaitingRun,
  answer: string,
  context: AgentContext,
  workDoneToken?: string,
): { command: string; arguments: unknown[]; workDoneToken?: string } | undefined {
  const argument: Record<string, unknown> = { runId: run.runId };
  if (answer.trim() !== "") argument.answer = answer.trim();
  if (run.wantsSelection && context.uri) {
    argument.uri = context.uri;
    if (context.selection) argument.range = context.selection;
  }
  if (argument.answer === undefined && argument.uri === undefined) return undefined;
  const params: { command: string; arguments: unknown[]; workDoneToken?: string } = { command: "weft.agent.resume", arguments: [argument] };
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

/** One run as `weft.agent.status` describes it. */
export interface AgentRunStatus {
  runId: string;
  workflow?: string;
  state?: string;
  step?: string | null;
  summary?: string | null;
  resumedBy?: string;
}

/** The runs of a `weft.agent.status` answer (`{ runs }` or one run). */
export function runsOfStatus(result: unknown): AgentRunStatus[] {
  if (!result || typeof result !== "object") return [];
  const r = result as { runs?: unknown; runId?: unknown };
  const list = Array.isArray(r.runs) ? r.runs : typeof r.runId === "string" ? [r] : [];
  return list.filter((x): x is AgentRunStatus => !!x && typeof (x as AgentRunStatus).runId === "string");
}

/** Runs that can still be cancelled. */
export function activeRuns(result: unknown): AgentRunStatus[] {
  return runsOfStatus(result).filter((r) => r.state === "queued" || r.state === "running");
}

/** Runs of a status answer that wait for input and were not resumed yet (their summary is the question). */
export function waitingRuns(result: unknown): WaitingRun[] {
  return runsOfStatus(result)
    .filter((r) => r.state === "waiting_for_input" && !r.resumedBy)
    .map((r) => waiting(r.runId, r.workflow, r.summary ?? ""));
}

/** One line per run, for a quick pick or the output channel. */
export function describeRun(run: AgentRunStatus): string {
  const parts = [`${run.workflow ?? "run"} ${run.state ?? "?"}`];
  if (run.step) parts.push(`at ${run.step}`);
  if (run.summary) parts.push(`— ${run.summary}`);
  return `${parts.join(" ")} (${run.runId})`;
}

/** The parts of a run report (docs/lsp-extensions.md) the editor shows. */
interface AgentReport {
  runId?: string;
  workflow?: string;
  state?: string;
  summary?: string;
  error?: string;
  question?: string;
  verdict?: string;
  decision_rule?: string;
  plan?: { steps?: { description?: string; files?: string[] }[] };
  edits?: { path?: string; kind?: string }[];
  reviews?: {
    judge?: string;
    verdict?: string;
    summary?: string;
    findings?: { path?: string; start_line?: number; end_line?: number; severity?: string; message?: string }[];
  }[];
  tests?: { status?: string; exit_code?: number | null; output?: string };
  test_analysis?: { passed?: boolean; analysis?: string };
  explanation?: { summary?: string; walkthrough?: string[]; pitfalls?: string[] };
  iterations?: number;
  duration_ms?: number;
  total_tokens?: number;
  applyEdit?: { applied?: boolean; failureReason?: string | null };
}

function isReport(result: unknown): result is AgentReport {
  return !!result && typeof result === "object" && typeof (result as AgentReport).state === "string" && "workflow" in result;
}

/** A one-line summary of a run report, for a notification. */
export function agentSummary(action: AgentAction, result: unknown): { text: string; level: "info" | "warning" | "error" } {
  if (!isReport(result)) return { text: `weft.agent.${action}: done`, level: "info" };
  const head = `Weft ${result.workflow}: ${result.state}`;
  if (result.state === "waiting_for_input") return { text: `${head}: ${result.question ?? result.summary ?? ""}`, level: "warning" };
  if (result.state === "failed") return { text: `${head}: ${result.error ?? result.summary ?? ""}`, level: "error" };
  const edit = result.applyEdit ? (result.applyEdit.applied ? " (edit applied)" : " (edit not applied)") : "";
  return { text: `${head}: ${result.summary ?? ""}${edit}`, level: result.state === "completed" ? "info" : "warning" };
}

/** A result of an agent command as Markdown-ish text for the output channel. */
export function formatAgentResult(action: AgentAction, result: unknown): string {
  if (result === null || result === undefined) return `weft.agent.${action}: done`;
  if (typeof result === "string") return result;
  if (action === "status" || (action !== "cancel" && !isReport(result) && runsOfStatus(result).length > 0)) {
    const runs = runsOfStatus(result);
    return runs.length === 0 ? "Weft: no agent runs" : ["Weft agent runs:", ...runs.map((r) => `- ${describeRun(r)}`)].join("\n");
  }
  if (action === "cancel") {
    const r = result as { runId?: string; cancelled?: boolean };
    return `Weft: run ${r.runId ?? "?"} ${r.cancelled ? "cancelled" : "was not running"}`;
  }
  if (!isReport(result)) {
    const r = result as { message?: unknown; text?: unknown; markdown?: unknown };
    for (const key of ["markdown", "text", "message"] as const) {
      if (typeof r[key] === "string") return r[key] as string;
    }
    return JSON.stringify(result, null, 2);
  }
  const lines = [`## Weft ${result.workflow}: ${result.state}`, ""];
  if (result.summary) lines.push(result.summary, "");
  if (result.question) lines.push(`Question: ${result.question}`, "");
  if (result.error && result.error !== result.summary) lines.push(`Error: ${result.error}`, "");
  const ex = result.explanation;
  if (ex) {
    if (ex.summary && ex.summary !== result.summary) lines.push(ex.summary, "");
    for (const step of ex.walkthrough ?? []) lines.push(`- ${step}`);
    if (ex.walkthrough?.length) lines.push("");
    if (ex.pitfalls?.length) lines.push("Pitfalls:", ...ex.pitfalls.map((p) => `- ${p}`), "");
  }
  const steps = result.plan?.steps ?? [];
  if (steps.length) {
    lines.push("Plan:");
    steps.forEach((s, i) => lines.push(`${i + 1}. ${s.description ?? ""}${s.files?.length ? ` (${s.files.join(", ")})` : ""}`));
    lines.push("");
  }
  if (result.edits?.length) lines.push(`Edits: ${result.edits.map((e) => `${e.kind ?? "modify"} ${e.path ?? "?"}`).join(", ")}`);
  if (result.applyEdit) {
    lines.push(
      result.applyEdit.applied ? "The edit was applied (undo reverts it)." : `The edit was not applied: ${result.applyEdit.failureReason ?? "refused"}`,
    );
  }
  if (result.edits?.length || result.applyEdit) lines.push("");
  for (const review of result.reviews ?? []) {
    lines.push(`${review.judge ?? "review"}: ${review.verdict ?? "?"}${review.summary ? ` — ${review.summary}` : ""}`);
    for (const f of review.findings ?? []) {
      const at = f.start_line !== undefined ? `:${f.start_line + 1}` : "";
      lines.push(`  - [${f.severity ?? "info"}] ${f.path ?? ""}${at} ${f.message ?? ""}`);
    }
  }
  if (result.verdict) lines.push(`Verdict: ${result.verdict}${result.decision_rule ? ` (${result.decision_rule})` : ""}`);
  if (result.reviews?.length || result.verdict) lines.push("");
  if (result.tests) {
    lines.push(`Tests: ${result.tests.status ?? "?"}${result.tests.exit_code != null ? ` (exit ${result.tests.exit_code})` : ""}`);
    if (result.test_analysis?.analysis) lines.push(result.test_analysis.analysis);
    lines.push("");
  }
  const stats = [];
  if (result.iterations) stats.push(`${result.iterations} iteration(s)`);
  if (result.total_tokens !== undefined) stats.push(`${result.total_tokens} tokens`);
  if (result.duration_ms !== undefined) stats.push(formatLatency(result.duration_ms));
  if (result.runId) stats.push(`run ${result.runId}`);
  if (stats.length) lines.push(stats.join(" · "));
  return lines.join("\n").trimEnd();
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
