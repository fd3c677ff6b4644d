// VS Code glue: starts `weft lsp`, provides ghost text, the status bar and
// the agent commands. The logic lives in ./logic.ts (unit-tested without
// VS Code); this file only translates between it and the `vscode` API.

import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
  TransportKind,
  ExecuteCommandRequest,
  ShowMessageNotification,
  MessageType,
  WorkDoneProgress,
} from "vscode-languageclient/node";
import {
  AGENT_ACTIONS,
  AgentAction,
  AgentContext,
  DISMISS_NOTIFICATION,
  OfferedSuggestion,
  InlineItem,
  ProgressTracker,
  StatusState,
  WeftStatus,
  WorkDoneValue,
  INSTRUCTION_ACTIONS,
  acceptCommandOf,
  activeRuns,
  agentCommandParams,
  agentSummary,
  codeActionContext,
  describeRun,
  instructionFromText,
  isWorkflow,
  commandsForClient,
  didShowParams,
  formatAgentResult,
  resumeParams,
  waitingRun,
  waitingRuns,
  WaitingRun,
  initializationOptions,
  normalizeInlineResult,
  partialAcceptParams,
  serverArgs,
  serverEnv,
  serverHasCommand,
} from "./logic";

const LOCAL_ACCEPT = "weft._acceptInline";
const LOCAL_DISMISS = "weft._dismissInline";

let client: LanguageClient | undefined;
let output: vscode.OutputChannel;
let statusItem: vscode.StatusBarItem;
const status = new StatusState();
const offered = new OfferedSuggestion();
let progressCounter = 0;

function config() {
  return vscode.workspace.getConfiguration("weft");
}

function telemetryEnabled(): boolean {
  return config().get<boolean>("telemetry.enabled", false);
}

function renderStatus(): void {
  const view = status.view();
  statusItem.text = view.text;
  statusItem.tooltip = view.tooltip;
  statusItem.backgroundColor = view.error ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
  statusItem.show();
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  const cfg = config();
  const command = cfg.get<string>("serverPath", "weft") || "weft";
  const args = serverArgs(cfg.get<string>("model", ""));
  const env = serverEnv(process.env, cfg.get<Record<string, unknown>>("extraEnv", {}));
  const serverOptions: ServerOptions = {
    run: { command, args, transport: TransportKind.stdio, options: { env } },
    debug: { command, args, transport: TransportKind.stdio, options: { env: { ...env, WEFT_LOG: "debug" } } },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    outputChannel: output,
    initializationOptions: initializationOptions(telemetryEnabled()),
  };
  const lc = new LanguageClient("weft", "Weft", serverOptions, clientOptions);

  // The extension registers the accept and agent commands itself (they must
  // exist before the server advertises them); keep the client from
  // registering them a second time.
  const executeFeature = lc.getFeature(ExecuteCommandRequest.method) as unknown as {
    register(data: { id: string; registerOptions: { commands?: string[] } }): void;
  };
  const register = executeFeature.register.bind(executeFeature);
  executeFeature.register = (data) =>
    register({ ...data, registerOptions: { ...data.registerOptions, commands: commandsForClient(data.registerOptions.commands ?? []) } });

  lc.onDidChangeState((event) => {
    if (event.newState === State.Stopped) {
      status.onError("the server stopped");
      renderStatus();
    }
  });
  client = lc;
  try {
    await lc.start();
  } catch (err) {
    status.onError(`could not start ${command}: ${String(err)}`);
    renderStatus();
    void vscode.window.showErrorMessage(
      `Weft: could not start \`${command} ${args.join(" ")}\`. Set "weft.serverPath" to the weft binary. (${String(err)})`,
    );
    return;
  }
  lc.onNotification("weft/status", (params: WeftStatus) => {
    status.onStatus(params);
    renderStatus();
  });
  lc.onNotification(ShowMessageNotification.type, (params) => {
    if (params.type === MessageType.Error) {
      status.onError(params.message);
      renderStatus();
      void vscode.window.showErrorMessage(params.message);
    } else if (params.type === MessageType.Warning) {
      void vscode.window.showWarningMessage(params.message);
    } else {
      void vscode.window.showInformationMessage(params.message);
    }
  });
  context.subscriptions.push({ dispose: () => void lc.stop() });
}

/** The ghost-text provider: `textDocument/inlineCompletion` per keystroke. */
class WeftInlineProvider implements vscode.InlineCompletionItemProvider {
  private readonly items = new WeakMap<vscode.InlineCompletionItem, InlineItem>();

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    const lc = client;
    if (!lc || lc.state !== State.Running || !config().get<boolean>("inline.enabled", true)) return undefined;
    // Typing fast: wait a little; VS Code cancels superseded requests.
    if (context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic) {
      await new Promise((resolve) => setTimeout(resolve, 75));
      if (token.isCancellationRequested) return undefined;
    }
    const params = {
      textDocument: { uri: lc.code2ProtocolConverter.asUri(document.uri) },
      position: lc.code2ProtocolConverter.asPosition(position),
      context: { triggerKind: context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke ? 1 : 2 },
    };
    const started = Date.now();
    let result: unknown;
    try {
      result = await lc.sendRequest("textDocument/inlineCompletion", params, token);
    } catch (err) {
      if (!token.isCancellationRequested) {
        status.onError((err as Error).message ?? String(err));
        renderStatus();
      }
      return undefined;
    }
    if (token.isCancellationRequested) return undefined;
    const items = normalizeInlineResult(result);
    if (items.length > 0 && status.latencyMs === undefined) status.onLatency(Date.now() - started);
    renderStatus();
    offered.offer(items);
    return items.map((item) => {
      const range = item.range ? lc.protocol2CodeConverter.asRange(item.range) : new vscode.Range(position, position);
      const vsItem = new vscode.InlineCompletionItem(item.insertText, range, {
        title: "Weft: accept",
        command: LOCAL_ACCEPT,
        arguments: [item],
      });
      this.items.set(vsItem, item);
      return vsItem;
    });
  }

  // Called by VS Code versions that support them (proposed API
  // `inlineCompletionsAdditions`); harmless elsewhere.
  handleDidShowCompletionItem(completionItem: vscode.InlineCompletionItem): void {
    const item = this.items.get(completionItem);
    if (item && telemetryEnabled()) void client?.sendNotification("textDocument/didShowCompletion", didShowParams(item));
  }

  handleDidPartiallyAcceptCompletionItem(
    completionItem: vscode.InlineCompletionItem,
    info: number | { acceptedLength?: number },
  ): void {
    const item = this.items.get(completionItem);
    const params = item && partialAcceptParams(item, info);
    if (params && telemetryEnabled()) void client?.sendNotification("textDocument/didPartiallyAcceptCompletion", params);
  }
}

async function acceptInline(item: InlineItem): Promise<void> {
  status.accepted += 1;
  offered.accepted();
  renderStatus();
  const command = acceptCommandOf(item);
  if (!command || !client) return;
  try {
    await client.sendRequest(ExecuteCommandRequest.type, { command: command.command, arguments: command.arguments });
  } catch (err) {
    output.appendLine(`accept command failed: ${String(err)}`);
  }
}

function showSummary(summary: { text: string; level: "info" | "warning" | "error" }): void {
  const show =
    summary.level === "error"
      ? vscode.window.showErrorMessage
      : summary.level === "warning"
        ? vscode.window.showWarningMessage
        : vscode.window.showInformationMessage;
  void show(summary.text, "Show Output").then((choice) => {
    if (choice) output.show(true);
  });
}

/** `weft.agent.status` and `weft.agent.cancel`: ask about runs, no progress. */
async function queryRuns(lc: LanguageClient, action: "status" | "cancel"): Promise<void> {
  const statusResult = await lc.sendRequest(ExecuteCommandRequest.type, agentCommandParams("status", {}));
  if (action === "status") {
    output.appendLine(formatAgentResult("status", statusResult));
    output.appendLine(status.view().tooltip);
    output.show(true);
    return;
  }
  const picked = await pickRun(activeRuns(statusResult), describeRun, "Cancel which run?", "no agent run is running");
  if (!picked) return;
  const result = await lc.sendRequest(ExecuteCommandRequest.type, agentCommandParams("cancel", { runId: picked.runId }));
  void vscode.window.showInformationMessage(formatAgentResult("cancel", result));
}

async function runAgent(action: AgentAction, argument?: unknown): Promise<void> {
  const lc = client;
  if (!lc || lc.state !== State.Running) {
    void vscode.window.showErrorMessage("Weft: the server is not running");
    return;
  }
  if (!serverHasCommand(lc.initializeResult?.capabilities, `weft.agent.${action}`)) {
    // Servers without agents (or with `[agent] enabled = false`): say so.
    const message =
      action === "status"
        ? status.view().tooltip.replace(/\n/g, " · ")
        : `this weft server has no agent command weft.agent.${action} (update weft, or set [agent] enabled = true)`;
    void vscode.window.showInformationMessage(`Weft: ${message}`);
    return;
  }
  if (action === "resume") {
    try {
      await resumeFromPalette(lc);
    } catch (err) {
      void vscode.window.showErrorMessage(`Weft: weft.agent.resume failed: ${(err as Error).message ?? String(err)}`);
    }
    return;
  }
  if (!isWorkflow(action)) {
    try {
      await queryRuns(lc, action as "status" | "cancel");
    } catch (err) {
      void vscode.window.showErrorMessage(`Weft: weft.agent.${action} failed: ${(err as Error).message ?? String(err)}`);
    }
    return;
  }
  // From a server code action (the light bulb): its argument says what.
  const fromCodeAction = codeActionContext(argument);
  if (fromCodeAction?.uri && (fromCodeAction.instruction || !INSTRUCTION_ACTIONS.includes(action))) {
    await runWorkflow(lc, action, fromCodeAction);
    return;
  }
  const editor = vscode.window.activeTextEditor;
  const selection = editor?.selection;
  const selectedText = editor && selection && !selection.isEmpty ? editor.document.getText(selection) : undefined;
  let instruction: string | undefined;
  if (INSTRUCTION_ACTIONS.includes(action)) {
    instruction = await vscode.window.showInputBox({
      title: `Weft: ${action}`,
      prompt: "What should the agent do?",
      value: instructionFromText(selectedText) ?? "",
      ignoreFocusOut: true,
    });
    if (!instruction) return;
  } else if (!editor) {
    void vscode.window.showErrorMessage(`Weft: weft.agent.${action} works on a file: open one and select code`);
    return;
  }
  const context = {
    instruction,
    ...(editor
      ? {
          uri: lc.code2ProtocolConverter.asUri(editor.document.uri),
          languageId: editor.document.languageId,
          selection: selection && !selection.isEmpty ? lc.code2ProtocolConverter.asRange(selection) : undefined,
          selectedText,
          workspaceFolder: vscode.workspace.getWorkspaceFolder(editor.document.uri)?.uri.toString(),
        }
      : {}),
  };
  await runWorkflow(lc, action, context);
}

/** Sends the workflow with a progress token and shows progress and report. */
async function runWorkflow(lc: LanguageClient, action: AgentAction, context: AgentContext): Promise<void> {
  const token = `weft/agent/${action}/${Date.now()}/${++progressCounter}`;
  const result = await sendWithProgress(lc, action, agentCommandParams(action, context, token), token);
  await answerWaiting(lc, action, waitingRun(result));
}

/** The one run, or the one the user picks; says `none` when there is no run. */
async function pickRun<T>(runs: T[], label: (run: T) => string, title: string, none: string): Promise<T | undefined> {
  if (runs.length === 0) {
    void vscode.window.showInformationMessage(`Weft: ${none}`);
    return undefined;
  }
  if (runs.length === 1) return runs[0];
  return (await vscode.window.showQuickPick(runs.map((run) => ({ label: label(run), run })), { title }))?.run;
}

/** `Weft: Agent: Resume`: picks a run that waits for input and answers it. */
async function resumeFromPalette(lc: LanguageClient): Promise<void> {
  const statusResult = await lc.sendRequest(ExecuteCommandRequest.type, agentCommandParams("status", {}));
  const picked = await pickRun(
    waitingRuns(statusResult),
    (run) => `${run.workflow}: ${run.question} (${run.runId})`,
    "Resume which run?",
    "no agent run is waiting for input",
  );
  if (picked) await answerWaiting(lc, "resume", picked);
}

/** A run that waits for input asks its question; the answer resumes it (as long as runs wait). */
async function answerWaiting(lc: LanguageClient, action: AgentAction, first: WaitingRun | undefined): Promise<void> {
  let result: unknown;
  for (let run = first; run; run = waitingRun(result)) {
    const editor = vscode.window.activeTextEditor;
    const selection = editor?.selection;
    const answer = await vscode.window.showInputBox({
      title: `Weft ${run.workflow}: ${run.question}`,
      prompt: run.wantsSelection ? "Select the code in the editor, then press Enter (a note may go with it)" : run.question,
      ignoreFocusOut: true,
    });
    if (answer === undefined) return;
    const now = editor
      ? {
          uri: lc.code2ProtocolConverter.asUri(editor.document.uri),
          selection: selection && !selection.isEmpty ? lc.code2ProtocolConverter.asRange(selection) : undefined,
        }
      : {};
    const resumeToken = `weft/agent/${action}/${Date.now()}/${++progressCounter}`;
    const params = resumeParams(run, answer, now, resumeToken);
    if (!params) return;
    result = await sendWithProgress(lc, action, params, resumeToken);
  }
}

/** Sends an agent command with its progress token; shows progress and report, and returns the result. */
async function sendWithProgress(
  lc: LanguageClient,
  action: AgentAction,
  params: { command: string; arguments: unknown[]; workDoneToken?: string },
  token: string,
): Promise<unknown> {
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Weft: ${action}`, cancellable: true },
    async (progress, cancel) => {
      const tracker = new ProgressTracker();
      const sub = lc.onProgress(WorkDoneProgress.type, token, (value) => {
        const update = tracker.update(value as WorkDoneValue);
        progress.report(update);
      });
      // The server stops the run on either: the progress token's cancel
      // and the request's $/cancelRequest.
      const source = new vscode.CancellationTokenSource();
      cancel.onCancellationRequested(() => {
        void lc.sendNotification("window/workDoneProgress/cancel", { token });
        source.cancel();
      });
      try {
        // The server's workspace/applyEdit and weft-review diagnostics are
        // handled by the language client itself while this runs.
        const result: unknown = await lc.sendRequest(ExecuteCommandRequest.type, params, source.token);
        output.appendLine(formatAgentResult(action, result));
        output.appendLine("");
        if (!waitingRun(result)) showSummary(agentSummary(action, result));
        return result;
      } catch (err) {
        const message = (err as Error).message ?? String(err);
        if (source.token.isCancellationRequested) void vscode.window.showInformationMessage(`Weft: ${action} cancelled`);
        else void vscode.window.showErrorMessage(`Weft: ${params.command} failed: ${message}`);
        return undefined;
      } finally {
        sub.dispose();
        source.dispose();
      }
    },
  );
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("Weft");
  statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  statusItem.command = "weft.agent.status";
  context.subscriptions.push(output, statusItem);
  renderStatus();

  context.subscriptions.push(
    vscode.commands.registerCommand(LOCAL_ACCEPT, acceptInline),
    // Escape while ghost text shows (package.json keybinding): tell the
    // server (opt-in) and hide the suggestion as VS Code would.
    vscode.commands.registerCommand(LOCAL_DISMISS, async () => {
      const params = offered.dismiss();
      if (params && telemetryEnabled()) void client?.sendNotification(DISMISS_NOTIFICATION, params);
      await vscode.commands.executeCommand("editor.action.inlineSuggest.hide");
    }),
    vscode.commands.registerCommand("weft.restart", async () => {
      await client?.stop();
      await startClient(context);
    }),
    vscode.languages.registerInlineCompletionItemProvider([{ scheme: "file" }, { scheme: "untitled" }], new WeftInlineProvider()),
    ...AGENT_ACTIONS.map((action) => vscode.commands.registerCommand(`weft.agent.${action}`, (argument?: unknown) => runAgent(action, argument))),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("weft.serverPath") || event.affectsConfiguration("weft.model")) {
        void vscode.commands.executeCommand("weft.restart");
      }
    }),
  );
  await startClient(context);
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
