#!/usr/bin/env bash
# Real-client test: headless Neovim loads weft.nvim, opens a Python file,
# asks `weft lsp` for a completion, accepts it and checks the buffer.
#   WEFT_BIN=/path/to/weft WEFT_MODEL=/path/to/model.gguf editors/neovim/test/run.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
plugin="$(dirname "$here")"
: "${WEFT_BIN:?set WEFT_BIN to the weft binary}"
: "${WEFT_MODEL:?set WEFT_MODEL to a GGUF model}"
[ -x "$WEFT_BIN" ] || { echo "WEFT_BIN=$WEFT_BIN is not executable" >&2; exit 1; }
[ -f "$WEFT_MODEL" ] || { echo "WEFT_MODEL=$WEFT_MODEL does not exist" >&2; exit 1; }
if ! command -v nvim >/dev/null; then
  echo "installing neovim (Debian)" >&2
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq neovim >/dev/null
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/fixture.py" "$work/fib.py"
# Short agent answers keep :WeftAgent explain fast on a CPU.
printf "[agent]\nmax_tokens = 200\nstep_timeout_s = 150\n" > "$work/config.toml"
export WEFT_TEST_FILE="$work/fib.py" WEFT_TEST_LOG="$work/cache/nvim/lsp.log" WEFT_CONFIG="$work/config.toml"
export WEFT_MAX_TOKENS="${WEFT_MAX_TOKENS:-16}" WEFT_PLUGIN_DIR="$plugin"
export XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" XDG_STATE_HOME="$work/state" XDG_CACHE_HOME="$work/cache"
nvim --version | head -1
status=0
timeout 300 nvim --headless -u NONE -i NONE -n \
  --cmd "set rtp^=$plugin" \
  -c "luafile $here/complete.lua" || status=$?
if [ "$status" -eq 0 ]; then
  # The README's setup (init.lua) and the insert-mode flow with the default keys.
  cp "$here/fixture.py" "$work/fib.py"
  timeout 300 nvim --headless -u "$here/init.lua" -i NONE -n "$work/fib.py" \
    -c "setfiletype python" -c "luafile $here/typing.lua" || status=$?
fi
if [ "$status" -ne 0 ]; then
  echo "neovim test failed (exit $status); server log:" >&2
  tail -n 40 "$WEFT_TEST_LOG" >&2 2>/dev/null || true
fi
exit "$status"
