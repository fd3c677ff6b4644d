// Unit tests of the extension's logic, without VS Code: `npm test`
// (after `npm run compile`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const logic = require("../out/logic.js");

const range = { start: { line: 1, character: 4 }, end: { line: 1, character: 4 } };
const command = { title: "Weft: completion accepted", command: "weft.completion.accepted", arguments: [{ id: "c1", model: "m" }] };

test("normalizeInlineResult accepts arrays, {items} and null", () => {
  assert.deepEqual(logic.normalizeInlineResult(null), []);
  assert.deepEqual(logic.normalizeInlineResult(undefined), []);
  const wire = { insertText: "return a + b", range, command };
  const fromArray = logic.normalizeInlineResult([wire]);
  assert.equal(fromArray.length, 1);
  assert.equal(fromArray[0].insertText, "return a + b");
  assert.deepEqual(fromArray[0].range, range);
  assert.deepEqual(fromArray[0].command, command);
  assert.equal(fromArray[0].wire, wire);
  assert.deepEqual(logic.normalizeInlineResult({ items: [wire] }).map((i) => i.insertText), ["return a + b"]);
});

test("normalizeInlineResult unwraps snippets and drops empty items", () => {
  const items = logic.normalizeInlineResult([
    { insertText: "" },
    { insertText: { kind: "snippet", value: "x = 1" } },
    null,
    42,
    { insertText: 7 },
  ]);
  assert.deepEqual(items.map((i) => i.insertText), ["x = 1"]);
});

test("serverArgs passes the model only when set", () => {
  assert.deepEqual(logic.serverArgs(""), ["lsp"]);
  assert.deepEqual(logic.serverArgs(undefined), ["lsp"]);
  assert.deepEqual(logic.serverArgs(" /m/a.gguf "), ["lsp", "--model", "/m/a.gguf"]);
});

test("serverEnv merges the extra environment as strings", () => {
  const env = logic.serverEnv({ PATH: "/bin", GONE: undefined }, { WEFT_MAX_TOKENS: 16, SKIP: null });
  assert.deepEqual(env, { PATH: "/bin", WEFT_MAX_TOKENS: "16" });
});

test("initializationOptions carries the telemetry opt-in", () => {
  assert.deepEqual(logic.initializationOptions(false), { client: "vscode", telemetry: { enabled: false } });
  assert.equal(logic.initializationOptions(true).telemetry.enabled, true);
});

test("telemetry params echo the wire item", () => {
  const [item] = logic.normalizeInlineResult([{ insertText: "abc def", range, command }]);
  assert.deepEqual(logic.didShowParams(item), { item: item.wire });
  assert.deepEqual(logic.partialAcceptParams(item, 3), { item: item.wire, acceptedLength: 3 });
  assert.deepEqual(logic.partialAcceptParams(item, { kind: 1, acceptedLength: 4 }), { item: item.wire, acceptedLength: 4 });
  assert.equal(logic.partialAcceptParams(item, 100).acceptedLength, 7, "clamped to the text");
  assert.equal(logic.partialAcceptParams(item, 0), undefined);
  assert.equal(logic.partialAcceptParams(item, undefined), undefined);
});

test("acceptCommandOf returns the server's command", () => {
  const [item] = logic.normalizeInlineResult([{ insertText: "x", command }]);
  assert.deepEqual(logic.acceptCommandOf(item), command);
  const [bare] = logic.normalizeInlineResult([{ insertText: "x" }]);
  assert.equal(logic.acceptCommandOf(bare), undefined);
});

test("agentCommandParams sends the selection and the progress token", () => {
  const params = logic.agentCommandParams(
    "explain",
    { uri: "file:///a.py", languageId: "python", selection: range, selectedText: "def f(): pass", workspaceFolder: "file:///" },
    "tok",
  );
  assert.deepEqual(params, {
    command: "weft.agent.explain",
    arguments: [{ uri: "file:///a.py", languageId: "python", range, text: "def f(): pass", workspaceFolder: "file:///" }],
    workDoneToken: "tok",
  });
  assert.deepEqual(logic.agentCommandParams("status", {}), { command: "weft.agent.status", arguments: [{}] });
  assert.deepEqual(logic.AGENT_ACTIONS, ["plan", "implement", "test", "review", "council", "explain", "status", "cancel"]);
});

test("serverHasCommand and commandsForClient", () => {
  const caps = { executeCommandProvider: { commands: ["weft.completion.accepted", "weft.agent.plan", "other"] } };
  assert.equal(logic.serverHasCommand(caps, "weft.agent.plan"), true);
  assert.equal(logic.serverHasCommand(caps, "weft.agent.explain"), false);
  assert.equal(logic.serverHasCommand(undefined, "x"), false);
  assert.deepEqual(logic.commandsForClient(caps.executeCommandProvider.commands), ["other"]);
});

test("formatAgentResult", () => {
  assert.equal(logic.formatAgentResult("plan", null), "weft.agent.plan: done");
  assert.equal(logic.formatAgentResult("plan", "text"), "text");
  assert.equal(logic.formatAgentResult("plan", { markdown: "# plan" }), "# plan");
  assert.equal(logic.formatAgentResult("plan", { a: 1 }), '{\n  "a": 1\n}');
});

test("ProgressTracker turns percentages into increments", () => {
  const t = new logic.ProgressTracker();
  assert.deepEqual(t.update({ kind: "begin", title: "Explain", percentage: 0 }), {});
  assert.equal(t.title, "Explain");
  assert.deepEqual(t.update({ kind: "report", message: "reading", percentage: 30 }), { message: "reading", increment: 30 });
  assert.deepEqual(t.update({ kind: "report", percentage: 20 }), {}, "never backwards");
  assert.deepEqual(t.update({ kind: "end", message: "done" }), { message: "done", increment: 70 });
  assert.equal(t.ended, true);
});

test("StatusState renders model, latency and errors", () => {
  const s = new logic.StatusState();
  assert.match(s.view().text, /Weft · starting/);
  s.onStatus({ model: "/models/SmolLM2-135M-Instruct.Q4_1.gguf", health: "loading" });
  assert.equal(s.view().text, "$(sync~spin) Weft: SmolLM2-135M-Instruct.Q4_1 · loading");
  s.onStatus({ model: "/models/SmolLM2-135M-Instruct.Q4_1.gguf", health: "ready", latencyMs: 182.4 });
  assert.equal(s.view().text, "$(sparkle) Weft: SmolLM2-135M-Instruct.Q4_1 · 182 ms");
  assert.equal(s.view().error, false);
  s.onError("Weft: model failed");
  const v = s.view();
  assert.equal(v.error, true);
  assert.match(v.text, /error$/);
  assert.match(v.tooltip, /Last error: Weft: model failed/);
  s.onStatus({ health: "ready", latencyMs: 1500 });
  assert.match(s.view().text, /1\.5 s$/);
  assert.doesNotMatch(s.view().tooltip, /Last error/);
});

test("modelLabel and formatLatency", () => {
  assert.equal(logic.modelLabel(undefined), "no model");
  assert.equal(logic.modelLabel("C:\\m\\x.GGUF"), "x");
  assert.equal(logic.modelLabel("qwen2.5-coder"), "qwen2.5-coder");
  assert.equal(logic.formatLatency(-1), "?");
  assert.equal(logic.formatLatency(999.6), "1000 ms");
});
