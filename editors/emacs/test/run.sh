#!/usr/bin/env bash
# Real-client test: emacs -batch connects eglot to `weft lsp`, asks for
# completion-at-point candidates, accepts one, then ghost text (weft.el).
#   WEFT_BIN=/path/to/weft WEFT_MODEL=/path/to/model.gguf editors/emacs/test/run.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${WEFT_BIN:?set WEFT_BIN to the weft binary}"
: "${WEFT_MODEL:?set WEFT_MODEL to a GGUF model}"
[ -x "$WEFT_BIN" ] || { echo "WEFT_BIN=$WEFT_BIN is not executable" >&2; exit 1; }
[ -f "$WEFT_MODEL" ] || { echo "WEFT_MODEL=$WEFT_MODEL does not exist" >&2; exit 1; }
if ! command -v emacs >/dev/null || ! emacs -batch -l package --eval '(progn (package-initialize) (require (quote eglot)))' >/dev/null 2>&1; then
  echo "installing emacs-nox and elpa-eglot (Debian)" >&2
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq emacs-nox elpa-eglot >/dev/null
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/fixture.py" "$work/fib.py"
# Short agent answers keep weft-agent explain fast on a CPU.
printf "[agent]\nmax_tokens = 200\nstep_timeout_s = 150\n" > "$work/config.toml"
export WEFT_TEST_FILE="$work/fib.py" WEFT_CONFIG="$work/config.toml" WEFT_EMACS_DIR="$(dirname "$here")"
export WEFT_MAX_TOKENS="${WEFT_MAX_TOKENS:-16}" WEFT_N_THREADS="${WEFT_N_THREADS:-1}" HOME="$work"
emacs --version | head -1
timeout 300 emacs -batch -l "$here/test.el"
