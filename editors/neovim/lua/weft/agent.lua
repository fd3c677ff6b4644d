-- Weft agents for Neovim: `:WeftAgent {action} [instruction | runId]` sends
-- `workspace/executeCommand weft.agent.<action>` (docs/lsp-extensions.md)
-- with the selected lines and a work-done progress token, echoes the
-- server's `$/progress`, and shows the run's report in a scratch buffer.
-- The server's `workspace/applyEdit` and `weft-review` diagnostics go
-- through Neovim's own LSP handlers (0.7.2 and newer).
local M = {}

local api = vim.api

M.ACTIONS = { "plan", "implement", "test", "review", "council", "explain", "status", "cancel", "resume" }
-- Workflows that need an instruction.
M.INSTRUCTION_ACTIONS = { plan = true, implement = true }

-- token -> the `$/progress` values seen for it.
M.progress = {}
-- token -> true while the run with that token has not ended.
M.active = {}

local function weft()
  return require("weft")
end

local function notify(msg, level)
  vim.notify("weft: " .. msg, level or vim.log.levels.INFO)
end

--- Whether `action` starts a run (status and cancel ask about runs;
--- resume carries a waiting run on).
function M.is_workflow(action)
  return action ~= "status" and action ~= "cancel" and action ~= "resume"
end

--- Lines line1..line2 (1-based, inclusive) as an LSP range.
local function line_range(line1, line2)
  return { start = { line = line1 - 1, character = 0 }, ["end"] = { line = line2, character = 0 } }
end

--- `weft.agent.resume`'s argument: the waiting run, the answer, and the
--- selection (uri, range of lines line1..line2) when `with_selection`.
function M.resume_arguments(bufnr, run_id, answer, line1, line2, with_selection)
  local arg = { runId = run_id }
  if answer and vim.trim(answer) ~= "" then
    arg.answer = vim.trim(answer)
  end
  if with_selection then
    arg.uri = vim.uri_from_bufnr(bufnr)
    if line1 and line2 then
      arg.range = line_range(line1, line2)
    end
  end
  return arg
end

--- The text after the first TODO or FIXME, like the server's code actions.
function M.instruction_from_text(text)
  for _, word in ipairs({ "TODO", "FIXME" }) do
    local s = (text or ""):match("%f[%w_]" .. word .. "%f[^%w_][:%s]*([^\n]*)")
    if s and vim.trim(s) ~= "" then
      return vim.trim(s)
    end
  end
  return nil
end

--- Handles a `$/progress` for an agent token; false for other tokens.
function M.on_progress(result)
  if type(result) ~= "table" or type(result.token) ~= "string" or not result.token:match("^weft/agent/") then
    return false
  end
  local value = result.value or {}
  M.progress[result.token] = M.progress[result.token] or {}
  table.insert(M.progress[result.token], value)
  if value.kind == "begin" then
    M.active[result.token] = true
  elseif value.kind == "end" then
    M.active[result.token] = nil
  end
  local text = value.title or value.message or ""
  if value.kind == "begin" and value.message then
    text = text .. ": " .. value.message
  end
  api.nvim_echo({ { string.format("weft agent %s: %s", value.kind or "", text) } }, false, {})
  return true
end

--- The command's argument: file, selected lines (line1..line2, 1-based,
--- inclusive), their text and the instruction.
function M.arguments(bufnr, line1, line2, instruction)
  local arg = { uri = vim.uri_from_bufnr(bufnr), languageId = vim.bo[bufnr].filetype }
  if line1 and line2 then
    local lines = api.nvim_buf_get_lines(bufnr, line1 - 1, line2, false)
    arg.range = line_range(line1, line2)
    arg.text = table.concat(lines, "\n")
  end
  if instruction and instruction ~= "" then
    arg.instruction = instruction
  end
  local client = weft().get_client()
  if client and client.config and client.config.root_dir then
    arg.workspaceFolder = vim.uri_from_fname(client.config.root_dir)
  end
  return arg
end

local function runs_of(result)
  if type(result) ~= "table" then
    return {}
  end
  if type(result.runs) == "table" then
    return result.runs
  end
  if type(result.runId) == "string" then
    return { result }
  end
  return {}
end
M.runs_of = runs_of

local function str(v)
  return type(v) == "string" and v or nil
end

--- A run report (or a status / cancel answer) as lines of Markdown.
function M.format(action, result)
  if result == nil or result == vim.NIL then
    return { "weft.agent." .. action .. ": done" }
  end
  if type(result) ~= "table" then
    return vim.split(tostring(result), "\n", { plain = true })
  end
  local lines = {}
  local function add(s)
    for _, l in ipairs(vim.split(s, "\n", { plain = true })) do
      table.insert(lines, l)
    end
  end
  if action == "cancel" then
    add(string.format("weft: run %s %s", str(result.runId) or "?", result.cancelled and "cancelled" or "was not running"))
    return lines
  end
  if action == "status" then
    local runs = runs_of(result)
    if #runs == 0 then
      return { "weft: no agent runs" }
    end
    add("Weft agent runs:")
    for _, r in ipairs(runs) do
      local s = "- " .. (str(r.workflow) or "run") .. " " .. (str(r.state) or "?")
      if str(r.step) then
        s = s .. " at " .. r.step
      end
      if str(r.summary) then
        s = s .. " — " .. r.summary
      end
      add(s .. " (" .. r.runId .. ")")
    end
    return lines
  end
  add("## Weft " .. (str(result.workflow) or action) .. ": " .. (str(result.state) or "?"))
  add("")
  if str(result.summary) and result.summary ~= "" then
    add(result.summary)
    add("")
  end
  if str(result.question) then
    add("Question: " .. result.question)
    add("")
  end
  if str(result.error) and result.error ~= result.summary then
    add("Error: " .. result.error)
    add("")
  end
  local ex = type(result.explanation) == "table" and result.explanation or nil
  if ex then
    if str(ex.summary) and ex.summary ~= result.summary then
      add(ex.summary)
      add("")
    end
    local walkthrough = type(ex.walkthrough) == "table" and ex.walkthrough or {}
    for _, s in ipairs(walkthrough) do
      add("- " .. tostring(s))
    end
    if #walkthrough > 0 then
      add("")
    end
    if type(ex.pitfalls) == "table" and #ex.pitfalls > 0 then
      add("Pitfalls:")
      for _, s in ipairs(ex.pitfalls) do
        add("- " .. tostring(s))
      end
      add("")
    end
  end
  local plan = type(result.plan) == "table" and type(result.plan.steps) == "table" and result.plan.steps or {}
  if #plan > 0 then
    add("Plan:")
    for i, s in ipairs(plan) do
      local files = type(s.files) == "table" and #s.files > 0 and (" (" .. table.concat(s.files, ", ") .. ")") or ""
      add(string.format("%d. %s%s", i, str(s.description) or "", files))
    end
    add("")
  end
  if type(result.edits) == "table" and #result.edits > 0 then
    local names = {}
    for _, e in ipairs(result.edits) do
      table.insert(names, (str(e.kind) or "modify") .. " " .. (str(e.path) or "?"))
    end
    add("Edits: " .. table.concat(names, ", "))
  end
  if type(result.applyEdit) == "table" then
    add(result.applyEdit.applied and "The edit was applied (:undo reverts it)."
      or ("The edit was not applied: " .. (str(result.applyEdit.failureReason) or "refused")))
    add("")
  end
  for _, review in ipairs(type(result.reviews) == "table" and result.reviews or {}) do
    local head = (str(review.judge) or "review") .. ": " .. (str(review.verdict) or "?")
    if str(review.summary) then
      head = head .. " — " .. review.summary
    end
    add(head)
    for _, f in ipairs(type(review.findings) == "table" and review.findings or {}) do
      local at = type(f.start_line) == "number" and (":" .. (f.start_line + 1)) or ""
      add(string.format("  - [%s] %s%s %s", str(f.severity) or "info", str(f.path) or "", at, str(f.message) or ""))
    end
  end
  if str(result.verdict) then
    add("Verdict: " .. result.verdict .. (str(result.decision_rule) and (" (" .. result.decision_rule .. ")") or ""))
    add("")
  end
  if type(result.tests) == "table" then
    add("Tests: " .. (str(result.tests.status) or "?"))
    if type(result.test_analysis) == "table" and str(result.test_analysis.analysis) then
      add(result.test_analysis.analysis)
    end
    add("")
  end
  if type(result.total_tokens) == "number" then
    add(string.format("%d tokens · %d ms · run %s", result.total_tokens, result.duration_ms or 0, str(result.runId) or "?"))
  end
  while #lines > 0 and lines[#lines] == "" do
    table.remove(lines)
  end
  return lines
end

local function show(lines)
  vim.cmd("botright new")
  local out = api.nvim_get_current_buf()
  vim.bo[out].buftype = "nofile"
  vim.bo[out].bufhidden = "wipe"
  vim.bo[out].filetype = "markdown"
  api.nvim_buf_set_lines(out, 0, -1, false, lines)
end

local function server_commands(client)
  local caps = client.server_capabilities or client.resolved_capabilities or {}
  local provider = caps.executeCommandProvider or {}
  return provider.commands or {}
end

--- Runs `weft.agent.<action>`. opts: line1, line2 (the selected lines),
--- instruction (plan, implement), run_id (status, cancel; for resume
--- "<runId> [answer]"), answer (resume), callback(result,
--- err) (instead of showing the report).
function M.run(action, opts)
  opts = opts or {}
  if not vim.tbl_contains(M.ACTIONS, action) then
    notify("unknown agent action " .. tostring(action) .. " (one of " .. table.concat(M.ACTIONS, ", ") .. ")", vim.log.levels.ERROR)
    return
  end
  local w = weft()
  local bufnr = api.nvim_get_current_buf()
  w.attach(bufnr)
  local client = w.get_client()
  if not client then
    notify("the server is not running", vim.log.levels.ERROR)
    return
  end
  local command = "weft.agent." .. action
  if not vim.tbl_contains(server_commands(client), command) then
    notify("this weft server has no " .. command .. " (update weft, or set [agent] enabled = true)", vim.log.levels.WARN)
    if opts.callback then
      opts.callback(nil, { message = "unsupported" })
    end
    return
  end
  if action == "cancel" and not opts.run_id then
    -- Without a run id: cancel every run this editor started that is
    -- still going, through its progress token.
    local n = 0
    for token in pairs(M.active) do
      w._call(client, "notify", "window/workDoneProgress/cancel", { token = token })
      n = n + 1
    end
    notify(n == 0 and "no agent run is running" or string.format("cancelling %d run(s)", n))
    return
  end
  local params = { command = command }
  if action == "resume" then
    -- :[range]WeftAgent resume {runId} [answer]: a range sends the lines.
    local run_id, answer = (opts.run_id or ""):match("^(%S*)%s*(.-)$")
    if run_id == "" then
      notify("resume needs a run: :[range]WeftAgent resume <runId> [answer]", vim.log.levels.WARN)
      return
    end
    params.arguments = { M.resume_arguments(bufnr, run_id, opts.answer or answer, opts.line1, opts.line2, opts.line1 ~= nil) }
    params.workDoneToken = string.format("weft/agent/%s/%d", action, vim.loop.hrtime())
    M.active[params.workDoneToken] = true
  elseif M.is_workflow(action) then
    local instruction = opts.instruction
    if M.INSTRUCTION_ACTIONS[action] and (not instruction or instruction == "") then
      local text = opts.line1 and table.concat(api.nvim_buf_get_lines(bufnr, opts.line1 - 1, opts.line2, false), "\n") or ""
      instruction = M.instruction_from_text(text)
      if not instruction and #api.nvim_list_uis() > 0 then
        instruction = vim.fn.input("weft " .. action .. ": ")
      end
      if not instruction or instruction == "" then
        notify(action .. " needs an instruction: :WeftAgent " .. action .. " <what to do>", vim.log.levels.WARN)
        return
      end
    end
    params.arguments = { M.arguments(bufnr, opts.line1, opts.line2, instruction) }
    params.workDoneToken = string.format("weft/agent/%s/%d", action, vim.loop.hrtime())
    M.active[params.workDoneToken] = true
  else
    -- An empty Lua table would be sent as [] (the server wants an object).
    params.arguments = { opts.run_id and { runId = opts.run_id } or vim.empty_dict() }
  end
  w._call(client, "request", "workspace/executeCommand", params, function(err, result)
    if params.workDoneToken then
      M.active[params.workDoneToken] = nil
    end
    if opts.callback then
      return opts.callback(result, err)
    end
    if err then
      notify(command .. " failed: " .. tostring(err.message), vim.log.levels.ERROR)
      return
    end
    if type(result) == "table" and result.state == "waiting_for_input" and str(result.runId) then
      -- The run asks something: the answer (and, for a question about the
      -- selection, the lines selected now) resumes it.
      local question = str(result.question) or str(result.summary) or "answer"
      local wants_selection = question:find("select") ~= nil
      vim.ui.input({ prompt = "weft " .. (str(result.workflow) or action) .. ": " .. question .. " " }, function(answer)
        if answer == nil or (vim.trim(answer) == "" and not wants_selection) then
          notify(action .. ": waiting for input: " .. question .. " (:WeftAgent resume " .. result.runId .. " <answer>)", vim.log.levels.WARN)
          return
        end
        local line1, line2 = opts.line1, opts.line2
        M.run("resume", { run_id = result.runId, answer = answer, line1 = wants_selection and (line1 or 1) or nil,
          line2 = wants_selection and (line2 or api.nvim_buf_line_count(bufnr)) or nil })
      end)
      return
    end
    if type(result) == "table" and str(result.state) then
      local level = result.state == "completed" and vim.log.levels.INFO
        or result.state == "failed" and vim.log.levels.ERROR
        or vim.log.levels.WARN
      notify(action .. ": " .. result.state .. ": " .. (str(result.question) or str(result.error) or str(result.summary) or ""), level)
    end
    show(M.format(action, result))
  end, bufnr)
  return params.workDoneToken
end

return M
