#!/usr/bin/env bash
# Builds (once, cached) a Debian 12 arm64 root file system that stands in for an ARM board:
# python3 + numpy from Debian, the aarch64 onnxruntime and apache-tvm wheels from PyPI (the host's
# versions), run on this x86-64 host through qemu-user-static and binfmt_misc. Tests reach it over
# SSH: the host's sshd chroots the session into it, so every process there (the agent included)
# is an aarch64 binary under qemu (tests/test_arm64.py).
#   usage: bash scripts/arm64_root.sh           build what is missing, register binfmt, print the root
#          bash scripts/arm64_root.sh --check   print the root and exit 0 only when it is complete
# Root only (debootstrap, chroot, binfmt). ~3 min on a quiet machine (8 on a loaded one); each
# stage leaves a mark file, so a re-run only does what is missing.
set -euo pipefail
ROOT=${HWNAS_ARM64_ROOT:-$HOME/.cache/hwnas/arm64-root}
WHEELS="$(dirname "$ROOT")/arm64-wheels"
host_version() { python3 -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || echo "$2"; }
# 1.22.1, not the host's: onnxruntime 1.32's aarch64 wheel dies (SIGSEGV) at import under Debian 12's
# qemu-user 7.2; 1.22 runs there but reads ONNX IR <= 10 only
ORT_VERSION=${HWNAS_ARM64_ORT:-1.22.1}
TVM_VERSION=${HWNAS_ARM64_TVM:-$(host_version apache-tvm 0.27.0.post1)}  # a library needs its runtime's version
FFI_VERSION=$(host_version apache-tvm-ffi 0.1.14.post1)
BASE_MARK="$ROOT/.hwnas-arm64-root-v1"
ORT_MARK="$ROOT/.hwnas-arm64-ort-$ORT_VERSION"
TVM_MARK="$ROOT/.hwnas-arm64-tvm-$TVM_VERSION"
PLATFORMS=(--platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64
           --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64)

if [ "${1:-}" = "--check" ]; then
  [ -e "$BASE_MARK" ] && [ -e "$ORT_MARK" ] && [ -e "$TVM_MARK" ] && echo "$ROOT" && exit 0
  exit 1
fi

# the kernel must hand aarch64 ELF files to qemu (the F flag: it works inside a chroot too)
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf \
  > /proc/sys/fs/binfmt_misc/register

if [ ! -e "$BASE_MARK" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  PART="$ROOT.part"
  rm -rf "$PART"
  mkdir -p "$(dirname "$ROOT")"
  echo "arm64_root: debootstrap bookworm arm64 into $PART" >&2
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-numpy bookworm "$PART" \
    "${MIRROR:-http://deb.debian.org/debian}" >&2
  touch "$PART/.hwnas-arm64-root-v1"
  rm -rf "$ROOT"
  mv "$PART" "$ROOT"
fi
SITE=$(chroot "$ROOT" python3 -c 'import sys; print(f"/usr/local/lib/python3.{sys.version_info[1]}/dist-packages")')
PYVER=$(chroot "$ROOT" python3 -c 'import sys; print(f"3.{sys.version_info[1]}")')
mkdir -p "$ROOT$SITE" "$WHEELS"

unpack() {  # wheels named by pip requirement, downloaded for aarch64 and unzipped into the root
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: "${PLATFORMS[@]}" \
    --python-version "$PYVER" -d "$WHEELS" "$@" >&2
  for req in "$@"; do
    name=$(echo "$req" | sed 's/[<>=].*//' | tr - _)
    version=$(echo "$req" | sed -n 's/^[^=]*==//p')
    wheel=$(ls "$WHEELS"/"$name"-"${version:-}"*.whl | sort -V | tail -1)
    python3 -m zipfile -e "$wheel" "$ROOT$SITE"
  done
}

if [ ! -e "$ORT_MARK" ]; then
  echo "arm64_root: onnxruntime $ORT_VERSION (aarch64, cp${PYVER/./})" >&2
  rm -rf "$ROOT$SITE"/onnxruntime "$ROOT$SITE"/onnxruntime-*.dist-info "$ROOT"/.hwnas-arm64-ort-*
  unpack "onnxruntime==$ORT_VERSION"
  touch "$ORT_MARK"
fi
if [ ! -e "$TVM_MARK" ]; then
  echo "arm64_root: apache-tvm $TVM_VERSION runtime (aarch64) and its dependencies" >&2
  rm -rf "$ROOT$SITE"/tvm "$ROOT$SITE"/apache_tvm-*.dist-info "$ROOT"/.hwnas-arm64-tvm-*
  unpack "apache-tvm==$TVM_VERSION" "apache-tvm-ffi==$FFI_VERSION" "ml_dtypes==0.5.4" "typing_extensions==4.16.0"
  touch "$TVM_MARK"
fi
echo "$ROOT"
