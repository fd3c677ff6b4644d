-- `:checkhealth weft`. Neovim 0.7 reports through the health#report_*
-- Vimscript functions, 0.8/0.9 through vim.health.report_*, 0.10+ through
-- vim.health.start/ok/warn/error/info.
local M = {}

local function reporter()
  local h = vim.health or {}
  if h.start then
    return h
  end
  if h.report_start then
    return {
      start = h.report_start,
      ok = h.report_ok,
      warn = h.report_warn,
      error = h.report_error,
      info = h.report_info,
    }
  end
  local function fn(name)
    return function(msg, advice)
      if advice ~= nil then
        vim.fn["health#report_" .. name](msg, advice)
      else
        vim.fn["health#report_" .. name](msg)
      end
    end
  end
  return { start = fn("start"), ok = fn("ok"), warn = fn("warn"), error = fn("error"), info = fn("info") }
end

function M.check()
  local report = reporter()
  local weft = require("weft")
  local config = weft.config
  report.start("weft")

  local v = vim.version()
  local version = string.format("%d.%d.%d", v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.7") == 1 then
    report.ok("Neovim " .. version)
  else
    report.error("Neovim " .. version .. " is too old", { "weft.nvim needs Neovim 0.7 or newer" })
  end
  if weft.has_native() then
    report.info("ghost text: Neovim's vim.lsp.inline_completion")
  else
    report.info("ghost text: weft.nvim's extmarks (virt_text / virt_lines)")
  end

  local cmd = weft.server_cmd()
  local exe = cmd[1]
  if vim.fn.executable(exe) == 1 then
    local out = vim.fn.system({ exe, "--version" })
    if vim.v.shell_error == 0 then
      report.ok(string.format("server: %s (%s)", vim.fn.exepath(exe), vim.trim(out)))
    else
      report.warn(exe .. " --version failed: " .. vim.trim(out))
    end
  else
    report.error(exe .. " is not executable", {
      "Build it: cargo build --release -p weft (the binary is target/release/weft)",
      "Or set require('weft').setup({ cmd = { '/path/to/weft', 'lsp' } })",
    })
  end

  local model = config.model
  if model and model ~= "" then
    if model:match("%.gguf$") then
      if vim.fn.filereadable(vim.fn.expand(model)) == 1 then
        report.ok("model: " .. model)
      else
        report.error("model file not found: " .. model, { "Run `weft models list` or fix setup({ model = ... })" })
      end
    else
      report.ok("model (registry name): " .. model)
    end
  else
    report.info("no model in setup(): weft uses its config.toml (`weft doctor` checks it)")
  end

  local client = weft.get_client()
  if client then
    report.ok(string.format("client running (id %d, encoding %s): %s", client.id, client.offset_encoding or "utf-16", weft.statusline()))
  else
    report.info("the server is not running (it starts when a file is opened)")
  end
  if weft.status.lastError then
    report.warn("last error: " .. weft.status.lastError)
  end
  report.info("telemetry notifications: " .. (config.telemetry and "on (opt-in)" or "off"))
end

return M
