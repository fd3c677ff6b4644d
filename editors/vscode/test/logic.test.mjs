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

test("OfferedSuggestion gives dismiss params once, none after an accept", () => {
  const items = logic.normalizeInlineResult([{ insertText: "abc", command }]);
  const offered = new logic.OfferedSuggestion();
  assert.equal(offered.dismiss(), undefined);
  offered.offer(items);
  assert.deepEqual(offered.dismiss(), { item: items[0].wire });
  assert.equal(offered.dismiss(), undefined, "only once");
  offered.offer(items);
  offered.accepted();
  assert.equal(offered.dismiss(), undefined, "an accepted suggestion is not dismissed");
  offered.offer([]);
  assert.equal(offered.dismiss(), undefined);
  assert.equal(logic.DISMISS_NOTIFICATION, "weft/didDismissCompletion");
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
  assert.deepEqual(logic.AGENT_ACTIONS, ["plan", "implement", "test", "review", "council", "explain", "status", "cancel", "resume"]);
});

test("serverHasCommand and commandsForClient", () => {
  const caps = { executeCommandProvider: { commands: ["weft.completion.accepted", "weft.agent.plan", "other"] } };
  assert.equal(logic.serverHasCommand(caps, "weft.agent.plan"), true);
  assert.equal(logic.serverHasCommand(caps, "weft.agent.explain"), false);
  assert.equal(logic.serverHasCommand(undefined, "x"), false);
  assert.deepEqual(logic.commandsForClient(caps.executeCommandProvider.commands), ["other"]);
});

test("agentCommandParams: instructions for workflows, runId for status and cancel", () => {
  const params = logic.agentCommandParams("implement", { instruction: "add a flag", uri: "file:///a.py", runId: "r1" }, "tok");
  assert.deepEqual(params, {
    command: "weft.agent.implement",
    arguments: [{ instruction: "add a flag", uri: "file:///a.py" }],
    workDoneToken: "tok",
  });
  assert.deepEqual(logic.agentCommandParams("cancel", { runId: "r1", uri: "file:///a.py" }, "tok"), {
    command: "weft.agent.cancel",
    arguments: [{ runId: "r1" }],
  });
  assert.equal(logic.isWorkflow("explain"), true);
  assert.equal(logic.isWorkflow("status"), false);
  assert.deepEqual(logic.INSTRUCTION_ACTIONS, ["plan", "implement"]);
});

test("codeActionContext reads a server code action's argument", () => {
  assert.equal(logic.codeActionContext(undefined), undefined);
  assert.equal(logic.codeActionContext({}), undefined);
  assert.equal(logic.codeActionContext("x"), undefined);
  assert.deepEqual(logic.codeActionContext({ uri: "file:///a.py", range, instruction: "add a flag" }), {
    uri: "file:///a.py",
    selection: range,
    instruction: "add a flag",
  });
  assert.deepEqual(logic.codeActionContext({ uri: "file:///a.py", instruction: " " }), { uri: "file:///a.py" });
  assert.deepEqual(logic.agentCommandParams("explain", logic.codeActionContext({ uri: "file:///a.py", range }), "t"), {
    command: "weft.agent.explain",
    arguments: [{ uri: "file:///a.py", range }],
    workDoneToken: "t",
  });
});

test("instructionFromText takes the TODO or FIXME text", () => {
  assert.equal(logic.instructionFromText("x = 1  # TODO: add a --verbose flag\n"), "add a --verbose flag");
  assert.equal(logic.instructionFromText("// FIXME handle empty input"), "handle empty input");
  assert.equal(logic.instructionFromText("# TODO"), undefined);
  assert.equal(logic.instructionFromText("TODOS are not todos"), undefined);
  assert.equal(logic.instructionFromText(undefined), undefined);
});

test("runsOfStatus, activeRuns and describeRun", () => {
  const status = {
    runs: [
      { runId: "a", workflow: "explain", state: "completed", step: null, summary: "explains fib" },
      { runId: "b", workflow: "implement", state: "running", step: "code (coder)", summary: null },
      { runId: "c", workflow: "plan", state: "queued" },
      { nope: 1 },
    ],
  };
  assert.deepEqual(logic.runsOfStatus(status).map((r) => r.runId), ["a", "b", "c"]);
  assert.deepEqual(logic.activeRuns(status).map((r) => r.runId), ["b", "c"]);
  assert.deepEqual(logic.runsOfStatus({ runId: "x", state: "unknown" }).map((r) => r.state), ["unknown"]);
  assert.deepEqual(logic.runsOfStatus(null), []);
  assert.equal(logic.describeRun(status.runs[1]), "implement running at code (coder) (b)");
  assert.equal(logic.describeRun(status.runs[0]), "explain completed — explains fib (a)");
});

const council = {
  runId: "r1",
  run_id: "r1",
  workflow: "council",
  state: "completed",
  summary: "REVISE (security REJECT, performance APPROVE, maintainability REVISE)",
  verdict: "REVISE",
  decision_rule: "majority",
  edits: [],
  reviews: [
    {
      judge: "security",
      verdict: "REJECT",
      summary: "shell injection",
      findings: [{ path: "cli.py", start_line: 3, end_line: 3, severity: "error", message: "shell=True", source: "security" }],
    },
  ],
  iterations: 1,
  steps: [],
  duration_ms: 5120,
  total_tokens: 2210,
  cost_usd: 0,
};

test("formatAgentResult renders run reports, status and cancel", () => {
  assert.equal(logic.formatAgentResult("plan", null), "weft.agent.plan: done");
  assert.equal(logic.formatAgentResult("plan", "text"), "text");
  assert.equal(logic.formatAgentResult("plan", { markdown: "# plan" }), "# plan");
  assert.equal(logic.formatAgentResult("plan", { a: 1 }), '{\n  "a": 1\n}');
  const text = logic.formatAgentResult("council", council);
  assert.match(text, /^## Weft council: completed\n/);
  assert.match(text, /security: REJECT — shell injection\n  - \[error\] cli\.py:4 shell=True/);
  assert.match(text, /Verdict: REVISE \(majority\)/);
  assert.match(text, /2210 tokens · 5\.1 s · run r1$/);
  const explain = logic.formatAgentResult("explain", {
    workflow: "explain",
    state: "completed",
    summary: "Computes Fibonacci numbers",
    explanation: { summary: "Computes Fibonacci numbers", walkthrough: ["base case", "recursion"], pitfalls: ["exponential time"] },
  });
  assert.equal(explain, "## Weft explain: completed\n\nComputes Fibonacci numbers\n\n- base case\n- recursion\n\nPitfalls:\n- exponential time");
  const implement = logic.formatAgentResult("implement", {
    workflow: "implement",
    state: "completed",
    summary: "APPROVE",
    plan: { steps: [{ description: "fix add", files: ["calc.py"] }] },
    edits: [{ path: "calc.py", kind: "modify" }],
    tests: { status: "passed", exit_code: 0 },
    test_analysis: { passed: true, analysis: "all pass" },
    applyEdit: { applied: true },
  });
  assert.match(implement, /Plan:\n1\. fix add \(calc\.py\)/);
  assert.match(implement, /Edits: modify calc\.py\nThe edit was applied/);
  assert.match(implement, /Tests: passed \(exit 0\)\nall pass/);
  assert.equal(logic.formatAgentResult("status", { runs: [] }), "Weft: no agent runs");
  assert.equal(logic.formatAgentResult("status", { runs: [{ runId: "b", workflow: "plan", state: "running" }] }), "Weft agent runs:\n- plan running (b)");
  assert.equal(logic.formatAgentResult("cancel", { runId: "b", cancelled: true }), "Weft: run b cancelled");
  assert.equal(logic.formatAgentResult("cancel", { runId: "b", cancelled: false }), "Weft: run b was not running");
});

test("agentSummary picks the message and its level", () => {
  assert.deepEqual(logic.agentSummary("council", council), { text: `Weft council: completed: ${council.summary}`, level: "info" });
  assert.deepEqual(
    logic.agentSummary("implement", { workflow: "implement", state: "waiting_for_input", summary: "", question: "What should change?" }),
    { text: "Weft implement: waiting_for_input: What should change?", level: "warning" },
  );
  assert.deepEqual(logic.agentSummary("test", { workflow: "test", state: "failed", summary: "", error: "step timed out" }), {
    text: "Weft test: failed: step timed out",
    level: "error",
  });
  assert.equal(
    logic.agentSummary("implement", { workflow: "implement", state: "completed", summary: "APPROVE", applyEdit: { applied: false } }).text,
    "Weft implement: completed: APPROVE (edit not applied)",
  );
  assert.deepEqual(logic.agentSummary("explain", null), { text: "weft.agent.explain: done", level: "info" });
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

test("waitingRun and resumeParams carry a waiting run on", () => {
  assert.equal(logic.waitingRun({ workflow: "plan", state: "completed", runId: "r" }), undefined);
  assert.equal(logic.waitingRun(null), undefined);
  const named = logic.waitingRun({ runId: "r1", workflow: "implement", state: "waiting_for_input", summary: "", question: "name the files to change" });
  assert.deepEqual(named, { runId: "r1", workflow: "implement", question: "name the files to change", wantsSelection: false });
  const here = { uri: "file:///a.py", selection: range };
  // An answer: sent alone, the original selection stays.
  assert.deepEqual(logic.resumeParams(named, "  in cli.py ", here, "tok"), {
    command: "weft.agent.resume",
    arguments: [{ runId: "r1", answer: "in cli.py" }],
    workDoneToken: "tok",
  });
  assert.equal(logic.resumeParams(named, "  ", here), undefined);
  // A question about the selection: the editor's goes along.
  const select = logic.waitingRun({ runId: "r2", workflow: "council", state: "waiting_for_input", question: "select the code to work on" });
  assert.equal(select.wantsSelection, true);
  assert.deepEqual(logic.resumeParams(select, "", here), {
    command: "weft.agent.resume",
    arguments: [{ runId: "r2", uri: "file:///a.py", range }],
  });
  assert.equal(logic.resumeParams(select, "", {}), undefined);
  // From the palette: the runs that wait and were not resumed yet.
  const status = {
    runs: [
      { runId: "a", workflow: "plan", state: "waiting_for_input", summary: "describe the task to carry out", resumedBy: "b" },
      { runId: "b", workflow: "plan", state: "waiting_for_input", summary: "name the files to change", resumes: "a" },
      { runId: "c", workflow: "review", state: "waiting_for_input", summary: "select the code to work on" },
      { runId: "d", workflow: "explain", state: "completed", summary: "ok" },
    ],
  };
  assert.deepEqual(logic.waitingRuns(status), [
    { runId: "b", workflow: "plan", question: "name the files to change", wantsSelection: false },
    { runId: "c", workflow: "review", question: "select the code to work on", wantsSelection: true },
  ]);
  assert.equal(logic.isWorkflow("resume"), false);
});
