-- The README's "without a plugin manager" setup, as a user's init.lua.
vim.opt.runtimepath:prepend(vim.env.WEFT_PLUGIN_DIR)
require("weft").setup({
  cmd = { vim.env.WEFT_BIN, "lsp" },
  model = vim.env.WEFT_MODEL,
  env = { WEFT_MAX_TOKENS = vim.env.WEFT_MAX_TOKENS },
})
