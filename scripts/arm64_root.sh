#!/usr/bin/env bash
# Builds (once, cached) a Debian 12 arm64 root file system that stands in for an ARM board:
# python3 + numpy from Debian, the aarch64 onnxruntime wheel from PyPI, run on this x86-64 host
# through qemu-user-static and binfmt_misc. Tests reach it over SSH: the host's sshd chroots the
# session into it, so every process there (the agent included) is an aarch64 binary under qemu.
#   usage: bash scripts/arm64_root.sh [--check]   (prints the root's path; --check only tells if it is built)
# Root only (debootstrap, chroot, binfmt). ~3 min the first time; the mark file makes it a no-op after.
set -euo pipefail
ROOT=${HWNAS_ARM64_ROOT:-$HOME/.cache/hwnas/arm64-root}
ORT_VERSION=${HWNAS_ARM64_ORT:-1.22.1}
MARK="$ROOT/.hwnas-arm64-root-v1"

register_binfmt() {  # the kernel must hand aarch64 ELF files to qemu (F flag: works inside a chroot)
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
  fi
}

if [ "${1:-}" = "--check" ]; then
  [ -e "$MARK" ] && echo "$ROOT" && exit 0
  exit 1
fi
register_binfmt
if [ -e "$MARK" ]; then echo "$ROOT"; exit 0; fi

command -v debootstrap >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PART="$ROOT.part"
rm -rf "$PART"
mkdir -p "$(dirname "$ROOT")"
echo "arm64_root: debootstrap bookworm arm64 into $PART (from $MIRROR)" >&2
debootstrap --arch=arm64 --variant=minbase --include=python3,python3-numpy bookworm "$PART" "$MIRROR" >&2

PYVER=$(chroot "$PART" python3 -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
WHEELS="$(dirname "$ROOT")/arm64-wheels"
mkdir -p "$WHEELS"
echo "arm64_root: onnxruntime $ORT_VERSION aarch64 wheel for cp$PYVER" >&2
python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 --python-version "$PYVER" \
  -d "$WHEELS" "onnxruntime==$ORT_VERSION" >&2
SITE="$PART/usr/local/lib/python3.${PYVER:1}/dist-packages"
mkdir -p "$SITE"
python3 -m zipfile -e "$(ls "$WHEELS"/onnxruntime-"$ORT_VERSION"-*aarch64*.whl | head -1)" "$SITE"
# onnxruntime reads /proc and /sys (CPU topology): mounted only while something runs in the root
mount -t proc proc "$PART/proc"; mount --bind /sys "$PART/sys"
trap 'umount "$PART/proc" "$PART/sys" 2>/dev/null || true' EXIT
chroot "$PART" python3 -c 'import onnxruntime, platform; print("arm64_root:", platform.machine(), "onnxruntime", onnxruntime.__version__)' >&2
umount "$PART/proc" "$PART/sys"; trap - EXIT
touch "$PART/.hwnas-arm64-root-v1"
rm -rf "$ROOT"
mv "$PART" "$ROOT"
echo "$ROOT"
