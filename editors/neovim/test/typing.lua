-- Driven by run.sh with init.lua: the user's flow in insert mode. Typing
-- triggers the debounced automatic completion, the ghost text appears and
-- <Tab> (the default keymap) accepts it. Steps run from timers so that
-- Neovim's main loop processes the typed keys.
local weft = require("weft")
local function out(s)
  io.stdout:write(s .. "\n")
end
local function fail(msg)
  io.stderr:write("FAIL: " .. msg .. "\n")
  vim.cmd("cquit 1")
end
local function poll(cond, k, n)
  n = n or 0
  if cond() then
    return k()
  end
  if n > 2400 then
    return fail("timed out (typing test)")
  end
  vim.defer_fn(function()
    poll(cond, k, n + 1)
  end, 50)
end
local ok, err = pcall(function()
  poll(function()
    local c = weft.get_client()
    return c ~= nil and c.initialized == true
  end, function()
    vim.api.nvim_win_set_cursor(0, { 4, 0 })
    vim.api.nvim_feedkeys("A", "n", false) -- append at the end of "    return "
    vim.defer_fn(function()
      if not vim.api.nvim_get_mode().mode:match("^i") then
        return fail("not in insert mode")
      end
      vim.api.nvim_feedkeys("f", "n", false) -- typing triggers a completion
      poll(weft.visible, function()
        local text = weft.current().text
        out("typing: ghost text after typing 'f': " .. vim.inspect(text))
        vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<Tab>", true, false, true), "m", false)
        poll(function()
          return not weft.visible() or weft.current().text ~= text
        end, function()
          local line = table.concat(vim.api.nvim_buf_get_lines(0, 3, -1, false), "\n")
          if not line:find("    return f" .. text, 1, true) then
            return fail("<Tab> did not insert the suggestion: " .. vim.inspect(line))
          end
          out("typing: after <Tab>: " .. vim.inspect(line))
          out("neovim typing test: PASS")
          vim.cmd("qall!")
        end)
      end)
    end, 200)
  end)
end)
if not ok then
  fail(tostring(err))
end
