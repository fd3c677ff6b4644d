-- Driven by run.sh: nvim --headless -u NONE -c "luafile complete.lua".
local function out(msg)
  io.stdout:write(msg .. "\n")
end
local function fail(msg)
  io.stderr:write("FAIL: " .. msg .. "\n")
  vim.cmd("cquit 1")
end
local function wait(ms, cond, what)
  if not vim.wait(ms, cond, 50) then
    fail("timed out waiting for " .. what)
  end
end

local ok, err = xpcall(function()
  local weft = require("weft")
  -- The pure helpers first.
  local function eq(a, b, what)
    if a ~= b then
      fail(what .. ": expected " .. vim.inspect(b) .. ", got " .. vim.inspect(a))
    end
  end
  eq(weft.utf16_len("aé😀"), 4, "utf16_len")
  eq(weft.next_word("  foo(bar)"), "  foo", "next_word")
  eq(weft.next_word("(bar)"), "(", "next_word punctuation")
  eq(weft.next_line("abc\ndef"), "abc", "next_line")
  eq(weft.next_line("\n  def\nx"), "\n  def", "next_line at a line break")
  weft.setup({
    cmd = { vim.env.WEFT_BIN, "lsp" },
    model = vim.env.WEFT_MODEL,
    env = {
      WEFT_MAX_TOKENS = vim.env.WEFT_MAX_TOKENS,
      -- debug for the server's "completion dismissed" line.
      WEFT_LOG = "info,weft_lsp::server=debug",
      WEFT_CONFIG = vim.env.WEFT_CONFIG,
      WEFT_N_THREADS = vim.env.WEFT_N_THREADS or "1",
    },
    telemetry = true, -- exercise didShowCompletion / didPartiallyAcceptCompletion
    native = false, -- test the plugin's own ghost text on every version
    auto_trigger = false,
  })
  vim.cmd("edit " .. vim.fn.fnameescape(vim.env.WEFT_TEST_FILE))
  vim.cmd("setfiletype python")
  wait(30000, function()
    local client = weft.get_client()
    return client ~= nil and client.initialized == true and vim.lsp.buf_is_attached(0, client.id)
  end, "the weft client to attach")
  local client = weft.get_client()
  local caps = client.server_capabilities or client.resolved_capabilities
  out("attached: client " .. client.id .. ", encoding " .. tostring(client.offset_encoding))

  local before = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
  -- Cursor after "    return " (line 4, byte col 11).
  vim.api.nvim_win_set_cursor(0, { 4, 10 })

  local function complete()
    local done, text, e = false, nil, nil
    weft.complete({ callback = function(t, er)
      done, text, e = true, t, er
    end })
    wait(120000, function()
      return done
    end, "textDocument/inlineCompletion")
    if e then
      fail("completion failed: " .. tostring(e))
    end
    return text
  end

  local text = complete()
  if not text or text == "" then
    fail("no suggestion")
  end
  out("suggestion: " .. vim.inspect(text))
  local marks = vim.api.nvim_buf_get_extmarks(0, vim.api.nvim_create_namespace("weft"), 0, -1, { details = true })
  if #marks ~= 1 then
    fail("expected one ghost-text extmark, got " .. #marks)
  end
  out("ghost text extmark: " .. vim.inspect(marks[1][4].virt_text or marks[1][4].virt_lines))

  -- Accept one word first (partial accept), then the rest.
  local word = weft.accept("word")
  out("accepted word: " .. vim.inspect(word))
  if not word or word == "" then
    fail("accept word returned nothing")
  end
  local rest = weft.visible() and weft.current().text or ""
  if rest ~= "" then
    vim.cmd("WeftAccept")
  end
  if weft.visible() then
    fail("the suggestion is still visible after :WeftAccept")
  end
  local after = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
  if after == before then
    fail("the buffer did not change")
  end
  local expected = "    return " .. text
  if not after:find(expected, 1, true) then
    fail("the buffer does not contain the completion:\n" .. after)
  end
  out("buffer after accept:\n" .. after)

  -- The server must survive the telemetry notifications and the accept
  -- command: ask again on a new line.
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { "", "def add(a, b):", "    " })
  local last = vim.api.nvim_buf_line_count(0)
  vim.api.nvim_win_set_cursor(0, { last, 3 })
  local again = complete()
  out("second suggestion: " .. vim.inspect(again))
  -- The explicit dismiss reaches the server (telemetry is on).
  vim.cmd("WeftDismiss")
  wait(10000, function()
    local f = io.open(vim.env.WEFT_TEST_LOG, "r")
    local log = f and f:read("*a") or ""
    if f then
      f:close()
    end
    return log:find("completion dismissed", 1, true) ~= nil
  end, "the server to log weft/didDismissCompletion")
  out("dismiss: weft/didDismissCompletion reached the server")

  -- :WeftAgent runs an agent on the selected lines: work-done progress
  -- from begin to end, then the run's report in a scratch buffer.
  local commands = (caps.executeCommandProvider or {}).commands or {}
  if not vim.tbl_contains(commands, "weft.agent.explain") then
    fail("the server does not advertise weft.agent.explain: " .. vim.inspect(commands))
  end
  local agent = require("weft.agent")
  local source = vim.api.nvim_get_current_buf()
  vim.cmd("1,3WeftAgent explain")
  local token = next(agent.active)
  if not token then
    fail(":WeftAgent explain sent no request")
  end
  wait(240000, function()
    return vim.bo.filetype == "markdown" and vim.api.nvim_get_current_buf() ~= source
  end, "the explain report")
  local report = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  out("agent report:\n  " .. table.concat(report, "\n  "))
  eq(report[1], "## Weft explain: completed", "report heading")
  -- The response and the progress `end` notification travel separately:
  -- the end may arrive just after the report.
  local function progress_kinds()
    return vim.tbl_map(function(v)
      return v.kind
    end, agent.progress[token] or {})
  end
  wait(10000, function()
    local kinds = progress_kinds()
    return kinds[#kinds] == "end"
  end, "the progress end")
  local kinds = progress_kinds()
  out("agent progress: " .. table.concat(kinds, " "))
  eq(kinds[1], "begin", "first progress")
  eq(kinds[#kinds], "end", "last progress")
  eq(vim.tbl_contains(kinds, "report"), true, "a progress report")
  eq(next(agent.active), nil, "no run left active")
  vim.cmd("close")
  -- :WeftAgent cancel stops a running council through its progress token.
  vim.cmd("1,3WeftAgent council")
  local council = next(agent.active)
  wait(60000, function()
    for _, v in ipairs(agent.progress[council] or {}) do
      if v.kind == "report" and v.message and v.message:find("(", 1, true) then
        return true -- a step started, e.g. "security (security)"
      end
    end
    return false
  end, "the council's first step")
  vim.cmd("WeftAgent cancel")
  wait(60000, function()
    return vim.bo.filetype == "markdown" and vim.api.nvim_get_current_buf() ~= source
  end, "the cancelled council's report")
  local cancelled = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  out("cancelled council: " .. table.concat(cancelled, " | "))
  eq(cancelled[1], "## Weft council: cancelled", "cancelled report heading")
  vim.cmd("close")
  -- weft.agent.status knows both runs.
  local status, status_err
  agent.run("status", {
    callback = function(result, e)
      status, status_err = result, e or false
    end,
  })
  wait(10000, function()
    return status_err ~= nil
  end, "weft.agent.status")
  if status_err then
    fail("weft.agent.status: " .. vim.inspect(status_err))
  end
  local states = {}
  for _, run in ipairs(agent.runs_of(status)) do
    states[run.workflow] = run.state
  end
  out("weft.agent.status: " .. vim.inspect(states))
  eq(states.explain, "completed", "the explain run's state")
  eq(states.council, "cancelled", "the council run's state")
  -- weft.agent.resume reaches the server, which says why the finished
  -- explain run cannot be resumed.
  local explain_id
  for _, run in ipairs(agent.runs_of(status)) do
    if run.workflow == "explain" then
      explain_id = run.runId
    end
  end
  local resume_err
  agent.run("resume", {
    run_id = explain_id,
    answer = "and the edge cases",
    callback = function(_, e)
      resume_err = e or false
    end,
  })
  wait(10000, function()
    return resume_err ~= nil
  end, "weft.agent.resume")
  local resume_message = resume_err and tostring(resume_err.message) or ""
  if not resume_message:find("is completed, not waiting_for_input", 1, true) then
    fail("weft.agent.resume of a completed run: " .. vim.inspect(resume_err))
  end
  out("weft.agent.resume: " .. resume_message)

  -- :checkhealth weft must run without Lua errors.
  vim.cmd("checkhealth weft")
  local health = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
  if not health:find("server:", 1, true) then
    fail("checkhealth weft did not report the server:\n" .. health)
  end
  out("checkhealth weft: ok")
  out("statusline: " .. weft.statusline())
end, debug.traceback)

if not ok then
  fail(tostring(err))
end
local client = require("weft").get_client()
if client then
  local call = require("weft")._call
  call(client, "stop")
  vim.wait(5000, function()
    return call(client, "is_stopped")
  end, 50)
end
out("neovim test: PASS")
vim.cmd("qall!")
