-- Weft for Neovim: ghost-text completions from `weft lsp` (local LLMs).
--
-- Works on Neovim 0.7.2 (Debian 12) and newer: the server is started with
-- vim.lsp.start_client + vim.lsp.buf_attach_client (vim.lsp.start where it
-- exists), ghost text is drawn with extmarks, and Neovim's own
-- vim.lsp.inline_completion is used where it exists (0.12+) unless
-- `native = false`.
local M = {}

local api = vim.api
local ns = api.nvim_create_namespace("weft")
local ACCEPT_COMMAND = "weft.completion.accepted"
M.AGENT_ACTIONS = { "plan", "implement", "test", "review", "council", "explain", "status", "cancel", "resume" }

local defaults = {
  -- The server command; `model` is appended as `--model <model>`.
  cmd = { "weft", "lsp" },
  model = nil,
  -- Extra environment for the server, e.g. { WEFT_MAX_TOKENS = "64" }.
  env = {},
  -- Filetypes to attach to; nil attaches to every normal file buffer.
  filetypes = nil,
  root_markers = { ".git", "Cargo.toml", "pyproject.toml", "package.json", "go.mod" },
  -- Ask for a completion as you type (after `debounce_ms` idle).
  auto_trigger = true,
  debounce_ms = 150,
  -- Opt in: tell the server what was shown / partially accepted.
  telemetry = false,
  -- Use vim.lsp.inline_completion when this Neovim has it.
  native = true,
  keymaps = {
    accept = "<Tab>", -- falls back to a normal <Tab> without a suggestion
    accept_word = "<M-w>",
    accept_line = "<M-l>",
    dismiss = "<C-]>",
    trigger = "<M-\\>",
  },
  hl_group = "WeftSuggestion",
}

M.config = vim.deepcopy(defaults)
M.status = { health = "stopped" } -- the last weft/status, plus errors
M.client_id = nil

-- The suggestion shown now:
-- { bufnr, row, col (0-based byte), text (not yet accepted), item, shown,
--   changedtick }
local current = nil
local request = nil -- { client, id, bufnr }
local timer = nil

-- Client methods: `client.request(...)` up to 0.10, `client:request(...)`
-- from 0.11 (where the dot form is deprecated).
local colon_methods = vim.fn.has("nvim-0.11") == 1
local function call(client, method, ...)
  if colon_methods then
    return client[method](client, ...)
  end
  return client[method](...)
end
M._call = call

local function notify(msg, level)
  vim.notify("weft: " .. msg, level or vim.log.levels.INFO)
end

local function has_native()
  return M.config.native and vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
end
M.has_native = has_native

--- UTF-16 code units of a UTF-8 string (what LSP lengths count).
function M.utf16_len(s)
  local n = 0
  for i = 1, #s do
    local b = s:byte(i)
    if b < 0x80 or (b >= 0xC0 and b < 0xF0) then
      n = n + 1
    elseif b >= 0xF0 then
      n = n + 2
    end
  end
  return n
end

--- The next word of a suggestion (leading blanks included), like Copilot's
--- accept-word.
function M.next_word(text)
  local word = text:match("^%s*[%w_]+") or text:match("^%s*[^%w_%s]+") or text:match("^%s+")
  return word or text
end

--- The next line of a suggestion: up to the end of the line, or the line
--- break and the next line when the suggestion starts with one.
function M.next_line(text)
  local line = text:match("^[^\n]*")
  if line == "" then
    local nl = text:match("^\n[^\n]*")
    return nl or text
  end
  return line
end

local function split_lines(text)
  return vim.split(text, "\n", { plain = true })
end

local function get_client()
  if M.client_id then
    local client = vim.lsp.get_client_by_id(M.client_id)
    if client and not (client.is_stopped and call(client, "is_stopped")) then
      return client
    end
  end
  return nil
end
M.get_client = get_client

local function server_cmd()
  local cmd = vim.deepcopy(M.config.cmd)
  if type(cmd) == "string" then
    cmd = { cmd, "lsp" }
  end
  if M.config.model and M.config.model ~= "" then
    table.insert(cmd, "--model")
    table.insert(cmd, M.config.model)
  end
  return cmd
end
M.server_cmd = server_cmd

local function find_root(bufnr)
  local name = api.nvim_buf_get_name(bufnr)
  local start = name ~= "" and vim.fn.fnamemodify(name, ":p:h") or vim.fn.getcwd()
  for _, marker in ipairs(M.config.root_markers) do
    local dir = vim.fn.finddir(marker, start .. ";")
    if dir ~= "" then
      return vim.fn.fnamemodify(dir, ":p:h:h")
    end
    local file = vim.fn.findfile(marker, start .. ";")
    if file ~= "" then
      return vim.fn.fnamemodify(file, ":p:h")
    end
  end
  return start
end

-- ---------------------------------------------------------------- status

function M.statusline()
  local s = M.status
  local model = s.model and s.model:match("([^/\\]+)$"):gsub("%.gguf$", "") or nil
  local text = "Weft"
  if model then
    text = text .. ": " .. model
  end
  if s.health == "ready" and s.latencyMs then
    text = text .. string.format(" · %d ms", math.floor(s.latencyMs + 0.5))
  elseif s.health then
    text = text .. " · " .. s.health
  end
  return text
end

local function on_status(_, result)
  if type(result) == "table" then
    for _, key in ipairs({ "model", "health", "latencyMs" }) do
      if result[key] ~= nil then
        M.status[key] = result[key]
      end
    end
    if result.health == "error" then
      M.status.lastError = result.message
    end
  end
  pcall(vim.cmd, "redrawstatus")
end

local function on_show_message(err, result, ctx, config)
  if type(result) == "table" and result.type == 1 then
    M.status.health = "error"
    M.status.lastError = result.message
  end
  return vim.lsp.handlers["window/showMessage"](err, result, ctx, config)
end

local function on_progress(err, result, ctx, config)
  if require("weft.agent").on_progress(result) then
    return
  end
  local default = vim.lsp.handlers["$/progress"]
  if default then
    return default(err, result, ctx, config)
  end
end

-- ---------------------------------------------------------------- client

local function client_config(bufnr)
  local capabilities = vim.lsp.protocol.make_client_capabilities()
  capabilities.textDocument = capabilities.textDocument or {}
  capabilities.textDocument.inlineCompletion = { dynamicRegistration = false }
  capabilities.window = capabilities.window or {}
  capabilities.window.workDoneProgress = true
  local env = vim.tbl_extend("force", {}, M.config.env or {})
  return {
    name = "weft",
    cmd = server_cmd(),
    cmd_env = env,
    root_dir = find_root(bufnr),
    capabilities = capabilities,
    init_options = { client = "neovim", telemetry = { enabled = M.config.telemetry and true or false } },
    flags = { debounce_text_changes = 0 },
    handlers = {
      ["weft/status"] = on_status,
      ["window/showMessage"] = on_show_message,
      ["$/progress"] = on_progress,
    },
    on_init = function(client)
      M.status.health = M.status.health == "stopped" and "starting" or M.status.health
      if has_native() then
        pcall(vim.lsp.inline_completion.enable, true, { client_id = client.id })
      end
    end,
    on_exit = function(code)
      M.client_id = nil
      M.status.health = "stopped"
      if code ~= 0 then
        M.status.lastError = "weft exited with code " .. tostring(code)
      end
    end,
  }
end

local function wanted(bufnr)
  if vim.bo[bufnr].buftype ~= "" then
    return false
  end
  local ft = vim.bo[bufnr].filetype
  if M.config.filetypes == nil then
    return ft ~= "" or api.nvim_buf_get_name(bufnr) ~= ""
  end
  return vim.tbl_contains(M.config.filetypes, ft)
end

--- Starts the server if needed and attaches it to `bufnr`.
function M.attach(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  if not wanted(bufnr) then
    return nil
  end
  local client = get_client()
  if not client then
    if vim.fn.executable(server_cmd()[1]) ~= 1 then
      if not M._warned_missing then
        M._warned_missing = true
        notify(server_cmd()[1] .. " is not executable: set cmd = { '/path/to/weft', 'lsp' }", vim.log.levels.ERROR)
      end
      return nil
    end
    if vim.lsp.start then
      -- 0.8+: starts (or reuses) the client and attaches the buffer.
      M.client_id = vim.lsp.start(client_config(bufnr), { bufnr = bufnr })
    else
      M.client_id = vim.lsp.start_client(client_config(bufnr))
    end
    if not M.client_id then
      return nil
    end
  end
  if not vim.lsp.buf_is_attached(bufnr, M.client_id) then
    vim.lsp.buf_attach_client(bufnr, M.client_id)
  end
  return M.client_id
end

-- ---------------------------------------------------------------- ghost text

local function clear_marks(bufnr)
  if bufnr and api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
end

local function cancel_request()
  if request then
    pcall(call, request.client, "cancel_request", request.id)
    request = nil
  end
end

--- Hides the suggestion.
--- Hides the suggestion. `explicit` (the dismiss key, :WeftDismiss) also
--- tells the server, with telemetry on: `weft/didDismissCompletion`.
function M.dismiss(explicit)
  cancel_request()
  if current then
    clear_marks(current.bufnr)
    local client = get_client()
    if explicit and current.shown and current.item and client and M.config.telemetry then
      call(client, "notify", "weft/didDismissCompletion", { item = current.item })
    end
  end
  current = nil
end

function M.visible()
  return current ~= nil and current.text ~= ""
end

--- The suggestion shown now (a copy), or nil.
function M.current()
  return current and vim.deepcopy(current) or nil
end

local function render()
  if not current then
    return
  end
  local bufnr = current.bufnr
  clear_marks(bufnr)
  if current.text == "" then
    return
  end
  local lines = split_lines(current.text)
  local hl = M.config.hl_group
  local line = api.nvim_buf_get_lines(bufnr, current.row, current.row + 1, false)[1] or ""
  local after_cursor = line:sub(current.col + 1)
  local opts = { hl_mode = "combine" }
  if lines[1] ~= "" then
    opts.virt_text = { { lines[1], hl } }
    -- 0.7 has no inline virtual text: overlay at the cursor when the rest
    -- of the line is empty, else show it at the end of the line.
    if after_cursor == "" then
      opts.virt_text_pos = "overlay"
      opts.virt_text_win_col = nil
    else
      opts.virt_text_pos = "eol"
    end
  end
  if #lines > 1 then
    local virt_lines = {}
    for i = 2, #lines do
      table.insert(virt_lines, { { lines[i], hl } })
    end
    if after_cursor ~= "" then
      table.insert(virt_lines, { { after_cursor, hl } })
    end
    opts.virt_lines = virt_lines
  end
  local col = math.min(current.col, #line)
  current.mark = api.nvim_buf_set_extmark(bufnr, ns, current.row, col, opts)
  if not current.shown then
    current.shown = true
    local client = get_client()
    if client and M.config.telemetry then
      call(client, "notify", "textDocument/didShowCompletion", { item = current.item })
    end
  end
end

local function cursor_pos()
  local row, col = unpack(api.nvim_win_get_cursor(0))
  row = row - 1
  local mode = api.nvim_get_mode().mode
  if not mode:match("^i") and not mode:match("^R") then
    -- Normal mode sits on the last character; complete after it.
    local line = api.nvim_get_current_line()
    if #line > 0 and col >= #line - 1 then
      col = #line
    end
  end
  return row, col
end

--- The LSP position of (row, byte col) in the client's encoding.
local function lsp_position(bufnr, row, col, encoding)
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  col = math.min(col, #line)
  local character = col
  if encoding ~= "utf-8" then
    local prefix = line:sub(1, col)
    if encoding == "utf-32" then
      character = vim.fn.strchars(prefix)
    else
      character = M.utf16_len(prefix)
    end
  end
  return { line = row, character = character }
end

--- Byte column of an LSP character offset on `row`.
local function byte_col(bufnr, row, character, encoding)
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  local units, i = 0, 1
  while i <= #line and units < character do
    local b = line:byte(i)
    local len = b >= 0xF0 and 4 or b >= 0xE0 and 3 or b >= 0xC0 and 2 or 1
    units = units + ((encoding ~= "utf-32" and len == 4) and 2 or 1)
    i = i + len
  end
  return i - 1
end

local function first_item(result)
  if type(result) ~= "table" then
    return nil
  end
  local items = result.items or result
  for _, item in ipairs(items) do
    local text = item.insertText
    if type(text) == "table" then
      text = text.value
    end
    if type(text) == "string" and text ~= "" then
      return item, text
    end
  end
  return nil
end

--- Asks for a completion at the cursor and shows it as ghost text.
--- `opts.invoked` (default true): the user asked (triggerKind 1).
--- `opts.callback(text|nil, err)` runs when the answer is in.
function M.complete(opts)
  opts = opts or {}
  local bufnr = api.nvim_get_current_buf()
  M.attach(bufnr)
  local client = get_client()
  if not client then
    if opts.callback then
      opts.callback(nil, "no weft client")
    end
    return
  end
  if not client.initialized then
    if opts.callback then
      opts.callback(nil, "the server is still starting")
    end
    return
  end
  M.dismiss()
  local row, col = cursor_pos()
  local encoding = client.offset_encoding or "utf-16"
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = lsp_position(bufnr, row, col, encoding),
    context = { triggerKind = (opts.invoked == false) and 2 or 1 },
  }
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local started = vim.loop.hrtime()
  local ok, id = call(client, "request", "textDocument/inlineCompletion", params, function(err, result)
    if request and request.id == id then
      request = nil
    end
    if err then
      M.status.lastError = err.message
      if opts.callback then
        opts.callback(nil, err.message)
      end
      return
    end
    if not api.nvim_buf_is_valid(bufnr) or api.nvim_buf_get_changedtick(bufnr) ~= tick then
      if opts.callback then
        opts.callback(nil, "stale")
      end
      return
    end
    local item, text = first_item(result)
    if not item then
      if opts.callback then
        opts.callback(nil, nil)
      end
      return
    end
    if M.status.latencyMs == nil then
      M.status.latencyMs = (vim.loop.hrtime() - started) / 1e6
    end
    -- A range that starts before the cursor replaces what was typed there.
    local show_col = col
    if item.range and item.range.start.line == row then
      local start_col = byte_col(bufnr, row, item.range.start.character, encoding)
      if start_col < col then
        local typed = (api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""):sub(start_col + 1, col)
        if text:sub(1, #typed) ~= typed then
          if opts.callback then
            opts.callback(nil, nil)
          end
          return
        end
        text = text:sub(#typed + 1)
      end
    end
    text = text:gsub("\r\n", "\n")
    current = { bufnr = bufnr, row = row, col = show_col, text = text, item = item, shown = false, changedtick = tick, accepted = "" }
    render()
    if opts.callback then
      opts.callback(text, nil)
    end
  end, bufnr)
  if ok then
    request = { client = client, id = id, bufnr = bufnr }
  end
end

local function insert(text)
  local lines = split_lines(text)
  local bufnr, row, col = current.bufnr, current.row, current.col
  api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  local end_row = row + #lines - 1
  local end_col = (#lines == 1) and (col + #lines[1]) or #lines[#lines]
  if api.nvim_get_current_buf() == bufnr then
    pcall(api.nvim_win_set_cursor, 0, { end_row + 1, end_col })
  end
  return end_row, end_col
end

local function run_accept_command(item)
  local command = item and item.command
  local client = get_client()
  if not (client and command and command.command) then
    return
  end
  call(client, "request", "workspace/executeCommand", { command = command.command, arguments = command.arguments or {} }, function(err)
    if err then
      M.status.lastError = "accept command: " .. tostring(err.message)
    end
  end, current and current.bufnr or 0)
end

--- Accepts `kind` = "all" (default), "word" or "line" of the suggestion.
--- Returns the accepted text (nil without a suggestion).
function M.accept(kind)
  if has_native() and not M.visible() then
    local ok, accepted = pcall(vim.lsp.inline_completion.get)
    return ok and accepted and "" or nil
  end
  if not M.visible() then
    return nil
  end
  kind = kind or "all"
  local text = current.text
  local piece = text
  if kind == "word" then
    piece = M.next_word(text)
  elseif kind == "line" then
    piece = M.next_line(text)
  end
  cancel_request()
  local end_row, end_col = insert(piece)
  current.accepted = current.accepted .. piece
  local item = current.item
  local rest = text:sub(#piece + 1)
  if rest == "" then
    -- The whole suggestion is in: that is an accept.
    clear_marks(current.bufnr)
    if kind ~= "all" and M.config.telemetry then
      -- It was accepted piece by piece: report the last piece too.
      local client = get_client()
      if client then
        call(client, "notify", "textDocument/didPartiallyAcceptCompletion", { item = item, acceptedLength = M.utf16_len(current.accepted) })
      end
    end
    run_accept_command(item)
    current = nil
  else
    local client = get_client()
    if client and M.config.telemetry then
      call(client, "notify", "textDocument/didPartiallyAcceptCompletion", { item = item, acceptedLength = M.utf16_len(current.accepted) })
    end
    current.row, current.col, current.text = end_row, end_col, rest
    current.changedtick = api.nvim_buf_get_changedtick(current.bufnr)
    render()
  end
  return piece
end

-- ---------------------------------------------------------------- agents

--- Runs `weft.agent.<action>` on lines line1..line2 (see weft.agent.run for
--- opts: instruction, run_id, callback).
function M.agent(action, line1, line2, opts)
  opts = vim.tbl_extend("force", opts or {}, { line1 = line1, line2 = line2 })
  return require("weft.agent").run(action, opts)
end

-- ---------------------------------------------------------------- setup

local function map_keys()
  local keys = M.config.keymaps or {}
  local function fallback(key)
    return api.nvim_replace_termcodes(key, true, false, true)
  end
  local function accept_map(key, kind)
    if not key or key == "" then
      return
    end
    vim.keymap.set("i", key, function()
      if M.visible() or (has_native() and kind == "all") then
        vim.schedule(function()
          if M.accept(kind) == nil and has_native() then
            api.nvim_feedkeys(fallback(key), "n", false)
          end
        end)
        return ""
      end
      return fallback(key)
    end, { expr = true, silent = true, desc = "weft: accept " .. kind })
  end
  accept_map(keys.accept, "all")
  accept_map(keys.accept_word, "word")
  accept_map(keys.accept_line, "line")
  if keys.dismiss and keys.dismiss ~= "" then
    vim.keymap.set("i", keys.dismiss, function()
      local was = M.visible()
      M.dismiss(true)
      return was and "" or fallback(keys.dismiss)
    end, { expr = true, silent = true, desc = "weft: dismiss" })
  end
  if keys.trigger and keys.trigger ~= "" then
    vim.keymap.set("i", keys.trigger, function()
      M.complete({ invoked = true })
    end, { silent = true, desc = "weft: complete" })
  end
end

local function schedule_auto()
  if not M.config.auto_trigger or has_native() then
    return
  end
  if timer then
    timer:stop()
  else
    timer = vim.loop.new_timer()
  end
  timer:start(M.config.debounce_ms, 0, vim.schedule_wrap(function()
    if api.nvim_get_mode().mode:match("^i") and get_client() and vim.lsp.buf_is_attached(0, M.client_id) then
      M.complete({ invoked = false })
    end
  end))
end

local function on_text_changed()
  if current then
    local bufnr = api.nvim_get_current_buf()
    if bufnr == current.bufnr and api.nvim_buf_get_changedtick(bufnr) == current.changedtick then
      return
    end
    M.dismiss()
  end
  schedule_auto()
end

local function define_commands()
  local cmd = api.nvim_create_user_command
  cmd("WeftComplete", function()
    M.complete({ invoked = true })
  end, { desc = "weft: complete at the cursor" })
  cmd("WeftAccept", function(o)
    local kind = o.args ~= "" and o.args or "all"
    if M.accept(kind) == nil then
      notify("no suggestion to accept")
    end
  end, { nargs = "?", complete = function() return { "all", "word", "line" } end, desc = "weft: accept the suggestion" })
  cmd("WeftDismiss", function()
    M.dismiss(true)
  end, {})
  cmd("WeftStatus", function()
    notify(M.statusline() .. (M.status.lastError and (" · last error: " .. M.status.lastError) or ""))
  end, {})
  cmd("WeftAgent", function(o)
    local action, rest = o.args:match("^%s*(%S+)%s*(.-)%s*$")
    local line1, line2
    if o.range and o.range > 0 then
      line1, line2 = o.line1, o.line2
    end
    local agent = require("weft.agent")
    local extra = rest ~= "" and rest or nil
    M.agent(action, line1, line2, agent.is_workflow(action or "") and { instruction = extra } or { run_id = extra })
  end, {
    nargs = "+",
    range = true,
    complete = function(lead, line)
      if line:match("WeftAgent%s+%S+%s") then
        return {}
      end
      return vim.tbl_filter(function(a)
        return a:sub(1, #lead) == lead
      end, M.AGENT_ACTIONS)
    end,
    desc = "weft: run an agent on the selection (:WeftAgent implement <instruction>, :WeftAgent cancel [runId], :WeftAgent resume <runId> [answer])",
  })
end

--- `require("weft").setup({ cmd = {...}, model = ..., keymaps = {...} })`
function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts or {})
  if opts and opts.keymaps == false then
    M.config.keymaps = {}
  end
  pcall(api.nvim_set_hl, 0, M.config.hl_group, { link = "Comment", default = true })
  define_commands()
  map_keys()
  local group = api.nvim_create_augroup("weft", { clear = true })
  api.nvim_create_autocmd({ "FileType", "BufEnter" }, {
    group = group,
    callback = function(args)
      M.attach(args.buf)
    end,
  })
  api.nvim_create_autocmd({ "TextChangedI", "TextChangedP" }, { group = group, callback = on_text_changed })
  api.nvim_create_autocmd("CursorMovedI", {
    group = group,
    callback = function()
      if current then
        local row, col = unpack(api.nvim_win_get_cursor(0))
        if row - 1 ~= current.row or col ~= current.col then
          M.dismiss()
        end
      end
    end,
  })
  api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, { group = group, callback = M.dismiss })
  -- Buffers already open when setup runs (lazy loading).
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) and api.nvim_buf_get_name(bufnr) ~= "" then
      M.attach(bufnr)
    end
  end
  return M
end

return M
