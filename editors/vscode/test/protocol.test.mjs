// Protocol test against the real server, with the same JSON-RPC stack the
// extension uses (vscode-jsonrpc / vscode-languageserver-protocol):
//   WEFT_BIN=.../weft WEFT_MODEL=.../model.gguf node --test test/protocol.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const rpc = require("vscode-jsonrpc/node");
const logic = require("../out/logic.js");

const BIN = process.env.WEFT_BIN;
const MODEL = process.env.WEFT_MODEL;
if (!BIN || !existsSync(BIN)) throw new Error(`WEFT_BIN (${BIN}) must name the weft binary`);
if (!MODEL || !existsSync(MODEL)) throw new Error(`WEFT_MODEL (${MODEL}) must name a GGUF model`);

const dir = mkdtempSync(join(tmpdir(), "weft-vscode-"));
const file = join(dir, "fib.py");
const text = "def fibonacci(n):\n    if n < 2:\n        return n\n    return \n";
writeFileSync(file, text);
// Short agent answers keep the agent test fast on a CPU.
writeFileSync(join(dir, "config.toml"), `[agent]\nmax_tokens = ${process.env.WEFT_AGENT_MAX_TOKENS ?? "200"}\nstep_timeout_s = 150\n`);
const uri = pathToFileURL(file).href;
// The cursor: after "    return " on line 3.
const cursor = { line: 3, character: 11 };

let proc;
let conn;
let init;
let stderr = "";
const statuses = [];
const progress = new Map();

const TIMEOUT = 120_000;
function withTimeout(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${TIMEOUT} ms\n--- server stderr ---\n${stderr.slice(-4000)}`)), TIMEOUT);
    }),
  ]).finally(() => clearTimeout(timer));
}

before(async () => {
  proc = spawn(BIN, ["lsp", "--model", MODEL], {
    env: {
      ...process.env,
      WEFT_CONFIG: join(dir, "config.toml"),
      WEFT_LOG: "info",
      WEFT_MAX_TOKENS: process.env.WEFT_MAX_TOKENS ?? "16",
      // One thread: on a loaded two-core machine two threads wait on each
      // other at every ggml barrier.
      WEFT_N_THREADS: process.env.WEFT_N_THREADS ?? "1",
    },
    stdio: ["pipe", "pipe", "pipe"],
  });
  proc.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  conn = rpc.createMessageConnection(new rpc.StreamMessageReader(proc.stdout), new rpc.StreamMessageWriter(proc.stdin));
  conn.onNotification("weft/status", (params) => statuses.push(params));
  conn.onNotification("$/progress", ({ token, value }) => {
    if (!progress.has(token)) progress.set(token, []);
    progress.get(token).push(value);
  });
  conn.onNotification("window/showMessage", () => {});
  conn.onNotification("window/logMessage", () => {});
  conn.onRequest("window/workDoneProgress/create", () => null);
  conn.onRequest("client/registerCapability", () => null);
  conn.onRequest("workspace/configuration", (params) => params.items.map(() => null));
  conn.listen();
  init = await withTimeout(
    conn.sendRequest("initialize", {
      processId: process.pid,
      rootUri: pathToFileURL(dir).href,
      workspaceFolders: [{ uri: pathToFileURL(dir).href, name: "fixture" }],
      initializationOptions: logic.initializationOptions(true),
      capabilities: {
        general: { positionEncodings: ["utf-16"] },
        window: { workDoneProgress: true },
        textDocument: { inlineCompletion: { dynamicRegistration: false }, synchronization: { dynamicRegistration: false } },
        workspace: { executeCommand: { dynamicRegistration: false } },
      },
    }),
    "initialize",
  );
  conn.sendNotification("initialized", {});
  conn.sendNotification("textDocument/didOpen", { textDocument: { uri, languageId: "python", version: 1, text } });
});

after(async () => {
  if (conn) {
    try {
      await withTimeout(conn.sendRequest("shutdown"), "shutdown");
      conn.sendNotification("exit");
    } catch {
      // the process is killed below anyway
    }
  }
  await new Promise((resolve) => {
    if (!proc || proc.exitCode !== null) return resolve();
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      resolve();
    }, 5000);
    proc.on("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  conn?.dispose();
});

function inline(position = cursor, triggerKind = 1) {
  return withTimeout(
    conn.sendRequest("textDocument/inlineCompletion", { textDocument: { uri }, position, context: { triggerKind } }),
    "textDocument/inlineCompletion",
  );
}

let firstItem;

test("initialize advertises inline completions and the accept command", () => {
  const caps = init.capabilities;
  assert.ok(caps.inlineCompletionProvider, "inlineCompletionProvider");
  assert.equal(caps.positionEncoding ?? "utf-16", "utf-16");
  assert.ok(logic.serverHasCommand(caps, logic.ACCEPT_COMMAND), "executeCommandProvider lists weft.completion.accepted");
  assert.equal(init.serverInfo?.name, "weft");
});

test("textDocument/inlineCompletion returns a suggestion at the cursor", async () => {
  const result = await inline();
  const items = logic.normalizeInlineResult(result);
  assert.ok(items.length > 0, `no inline completion; got ${JSON.stringify(result)}`);
  firstItem = items[0];
  console.log(`# inline completion: ${JSON.stringify(firstItem.insertText)}`);
  assert.deepEqual(firstItem.range, { start: cursor, end: cursor });
  const command = logic.acceptCommandOf(firstItem);
  assert.equal(command?.command, logic.ACCEPT_COMMAND);
  assert.equal(typeof command.arguments[0].id, "string");
});

test("accepting runs the item's command through workspace/executeCommand", async () => {
  assert.ok(firstItem, "needs the previous test's item");
  const command = logic.acceptCommandOf(firstItem);
  const result = await withTimeout(
    conn.sendRequest("workspace/executeCommand", { command: command.command, arguments: command.arguments }),
    "executeCommand",
  );
  assert.equal(result ?? null, null);
});

test("telemetry notifications do not break the server", async () => {
  assert.ok(firstItem, "needs the previous test's item");
  conn.sendNotification("textDocument/didShowCompletion", logic.didShowParams(firstItem));
  conn.sendNotification("textDocument/didPartiallyAcceptCompletion", logic.partialAcceptParams(firstItem, 1));
  const offered = new logic.OfferedSuggestion();
  offered.offer([firstItem]);
  conn.sendNotification(logic.DISMISS_NOTIFICATION, offered.dismiss());
  // The document changes (the user accepted one character) and completion
  // goes on.
  const accepted = firstItem.insertText.slice(0, 1);
  conn.sendNotification("textDocument/didChange", {
    textDocument: { uri, version: 2 },
    contentChanges: [{ range: { start: cursor, end: cursor }, text: accepted }],
  });
  const next = logic.normalizeInlineResult(await inline({ line: cursor.line, character: cursor.character + accepted.length }, 2));
  assert.ok(Array.isArray(next));
  // And a plain request still gets its answer.
  const completion = await withTimeout(
    conn.sendRequest("textDocument/completion", { textDocument: { uri }, position: { line: 0, character: 0 }, context: { triggerKind: 1 } }),
    "textDocument/completion",
  );
  assert.ok(completion === null || Array.isArray(completion) || Array.isArray(completion.items));
});

test("weft/status reports the model after a completion", { skip: false }, async (t) => {
  // Sent by servers that implement docs/lsp-extensions.md.
  await new Promise((resolve) => setTimeout(resolve, 200));
  if (statuses.length === 0) {
    t.skip("the server sent no weft/status notification (not implemented by this server)");
    return;
  }
  const view = (() => {
    const s = new logic.StatusState();
    for (const status of statuses) s.onStatus(status);
    return s.view();
  })();
  console.log(`# status bar: ${view.text}`);
  assert.ok(statuses.some((s) => s.health === "ready"), JSON.stringify(statuses));
  assert.ok(statuses.some((s) => typeof s.latencyMs === "number"), JSON.stringify(statuses));
});

test("model loading reports work-done progress", async (t) => {
  // docs/lsp-extensions.md: token "weft/loadingModel", begin then end.
  const values = progress.get("weft/loadingModel");
  if (!values) {
    t.skip("the server reported no model-loading progress");
    return;
  }
  assert.equal(values[0].kind, "begin", JSON.stringify(values));
  assert.equal(values.at(-1).kind, "end", JSON.stringify(values));
  console.log(`# loading progress: ${values.map((v) => v.kind + (v.message ? ` (${v.message})` : "")).join(" → ")}`);
});

test("weft.agent.explain reports work-done progress and returns its report", async () => {
  assert.ok(
    logic.serverHasCommand(init.capabilities, "weft.agent.explain"),
    `executeCommandProvider.commands lacks weft.agent.explain: ${JSON.stringify(init.capabilities.executeCommandProvider)}`,
  );
  // The server offers the agents as code actions on a selection; the
  // extension runs one with the action's own argument.
  const selection = { start: { line: 0, character: 0 }, end: { line: 3, character: 0 } };
  const actions = await withTimeout(
    conn.sendRequest("textDocument/codeAction", { textDocument: { uri }, range: selection, context: { diagnostics: [] } }),
    "textDocument/codeAction",
  );
  const explain = (actions ?? []).map((a) => a.command ?? a).find((c) => c.command === "weft.agent.explain");
  assert.ok(explain, `no weft.agent.explain code action: ${JSON.stringify(actions)}`);
  const context = logic.codeActionContext(explain.arguments?.[0]);
  assert.deepEqual(context, { uri, selection }, JSON.stringify(explain));
  const token = `weft-test-explain-${Date.now()}`;
  const params = logic.agentCommandParams("explain", context, token);
  const result = await withTimeout(conn.sendRequest("workspace/executeCommand", params), "weft.agent.explain");
  console.log(`# ${logic.formatAgentResult("explain", result).replace(/\n/g, "\n# ")}`);
  assert.equal(result.workflow, "explain", JSON.stringify(result));
  assert.equal(result.state, "completed", JSON.stringify(result));
  assert.equal(typeof result.runId, "string");
  assert.equal(result.runId, result.run_id);
  assert.equal(typeof result.explanation?.summary, "string", JSON.stringify(result));
  assert.ok(result.explanation.summary.length > 0, JSON.stringify(result));
  assert.ok(result.steps.length >= 1 && result.steps.every((s) => s.completion_tokens > 0), JSON.stringify(result.steps));
  assert.match(logic.agentSummary("explain", result).text, /^Weft explain: completed: /);

  // The response and the progress `end` notification travel separately:
  // the end may arrive just after the result.
  for (let waited = 0; waited < 10000 && (progress.get(token) ?? []).at(-1)?.kind !== "end"; waited += 50) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const values = progress.get(token) ?? [];
  console.log(`# agent progress: ${values.map((v) => v.kind + (v.title ? ` "${v.title}"` : "") + (v.message ? ` (${v.message})` : "")).join(" → ")}`);
  assert.equal(values[0]?.kind, "begin", `progress: ${JSON.stringify(values)}`);
  assert.equal(values[0].title, "Weft: explain");
  assert.equal(values[0].cancellable, true);
  assert.ok(values.slice(1, -1).length > 0 && values.slice(1, -1).every((v) => v.kind === "report"), `progress: ${JSON.stringify(values)}`);
  assert.equal(values.at(-1)?.kind, "end", `progress: ${JSON.stringify(values)}`);
  assert.match(values.at(-1).message ?? "", /^completed/);

  // The finished run is known to weft.agent.status; cancelling it is a no-op.
  const status = await withTimeout(
    conn.sendRequest("workspace/executeCommand", logic.agentCommandParams("status", { runId: result.runId })),
    "weft.agent.status",
  );
  assert.deepEqual(logic.runsOfStatus(status).map((r) => [r.runId, r.workflow, r.state]), [[result.runId, "explain", "completed"]]);
  assert.deepEqual(logic.activeRuns(status), []);
  const cancelled = await withTimeout(
    conn.sendRequest("workspace/executeCommand", logic.agentCommandParams("cancel", { runId: result.runId })),
    "weft.agent.cancel",
  );
  assert.deepEqual(cancelled, { runId: result.runId, cancelled: false });

  // A finished run cannot be resumed: the server says why.
  const waiting = { runId: result.runId, workflow: "explain", question: "", wantsSelection: false };
  await assert.rejects(
    withTimeout(conn.sendRequest("workspace/executeCommand", logic.resumeParams(waiting, "and the edge cases", {})), "weft.agent.resume"),
    /is completed, not waiting_for_input/,
  );
});
