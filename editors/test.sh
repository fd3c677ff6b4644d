#!/usr/bin/env bash
# Runs every editor client's tests against the real server:
#   WEFT_BIN=/path/to/weft WEFT_MODEL=/path/to/model.gguf editors/test.sh
# VS Code (unit tests, .vsix packaging, protocol test), Neovim (headless),
# Emacs (batch + eglot), the JetBrains/LSP4IJ template, Helix and Zed files.
# Non-interactive; exits non-zero when any step fails.
set -uo pipefail
editors="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${WEFT_BIN:?set WEFT_BIN to the weft binary (e.g. ~/.cache/weft/target/debug/weft)}"
: "${WEFT_MODEL:?set WEFT_MODEL to a GGUF model (e.g. SmolLM2-135M-Instruct.Q4_1.gguf)}"
case "$WEFT_BIN" in */*) WEFT_BIN="$(realpath "$WEFT_BIN")" ;; *) WEFT_BIN="$(command -v "$WEFT_BIN" || echo "$WEFT_BIN")" ;; esac
WEFT_MODEL="$(realpath "$WEFT_MODEL")"
export WEFT_BIN WEFT_MODEL
export WEFT_MAX_TOKENS="${WEFT_MAX_TOKENS:-16}"
[ -x "$WEFT_BIN" ] || { echo "WEFT_BIN=$WEFT_BIN is not executable" >&2; exit 2; }
[ -f "$WEFT_MODEL" ] || { echo "WEFT_MODEL=$WEFT_MODEL does not exist" >&2; exit 2; }
export CI=1 NO_UPDATE_NOTIFIER=1 npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

results=()
failed=0
step() {
  local name="$1"; shift
  local start=$SECONDS
  echo
  echo "=== $name"
  if "$@"; then
    results+=("PASS  $name ($((SECONDS - start)) s)")
  else
    results+=("FAIL  $name ($((SECONDS - start)) s)")
    failed=1
  fi
}

vscode_install() {
  cd "$editors/vscode" || return 1
  if [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    echo "node_modules is up to date"
  else
    npm ci --no-audit --no-fund
  fi
}
vscode_compile() { cd "$editors/vscode" && npm run --silent compile && npm run --silent bundle; }
vscode_unit() { cd "$editors/vscode" && node --test test/logic.test.mjs; }
vscode_package() {
  cd "$editors/vscode" && rm -f weft.vsix && npx --no-install vsce package --no-dependencies --out weft.vsix </dev/null \
    && unzip -l weft.vsix | grep -q 'extension/dist/extension.js'
}
vscode_protocol() { cd "$editors/vscode" && node --test --test-reporter=spec test/protocol.test.mjs; }
jetbrains_validate() {
  node "$editors/jetbrains/validate.mjs" || return 1
  # The validator must reject a broken template.
  local bad; bad="$(mktemp -d)"
  echo '{"id":"weft","name":"x","programArgs":{"default":"nope"},"fileTypeMappings":[]}' > "$bad/template.json"
  if node "$editors/jetbrains/validate.mjs" "$bad" >/dev/null 2>&1; then
    echo "validator accepted a broken template" >&2; rm -rf "$bad"; return 1
  fi
  rm -rf "$bad"
}
config_files() {
  python3 - "$editors" <<'PY' || return 1
import json, re, sys, tomllib
root = sys.argv[1]
helix = tomllib.load(open(f"{root}/helix/languages.toml", "rb"))
server = helix["language-server"]["weft"]
assert server["command"] == "weft" and server["args"][0] == "lsp", server
assert all(any(s == "weft" or (isinstance(s, dict) and s.get("name") == "weft") for s in l["language-servers"]) for l in helix["language"])
zed = open(f"{root}/zed/settings.json").read()
zed = json.loads(re.sub(r"^\s*//.*$", "", zed, flags=re.M))
assert zed["lsp"]["weft"]["binary"]["arguments"][0] == "lsp"
ext = tomllib.load(open(f"{root}/zed/weft-extension/extension.toml", "rb"))
assert "weft" in ext["language_servers"]
print("helix/languages.toml, zed/settings.json, zed/weft-extension/extension.toml: ok")
PY
  # The Emacs package byte-compiles cleanly.
  if command -v emacs >/dev/null; then
    local out; out="$(mktemp -d)"
    cp "$editors/emacs/weft.el" "$out/"
    emacs -batch -L "$out" --eval '(setq byte-compile-error-on-warn t)' -f batch-byte-compile "$out/weft.el" || { rm -rf "$out"; return 1; }
    rm -rf "$out"
  fi
}

total=$SECONDS
echo "weft: $WEFT_BIN ($("$WEFT_BIN" --version 2>/dev/null))"
echo "model: $WEFT_MODEL"
step "vscode: npm ci" vscode_install
step "vscode: compile + bundle" vscode_compile
step "vscode: unit tests" vscode_unit
step "vscode: package .vsix" vscode_package
step "vscode: protocol test (real server)" vscode_protocol
step "neovim: headless test (real server)" "$editors/neovim/test/run.sh"
step "emacs: eglot batch test (real server)" "$editors/emacs/test/run.sh"
step "jetbrains: LSP4IJ template" jetbrains_validate
step "helix / zed / emacs config files" config_files

echo
echo "=== summary ($((SECONDS - total)) s)"
printf '%s\n' "${results[@]}"
exit "$failed"
