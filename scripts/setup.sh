#!/usr/bin/env bash
# Installs everything hwnas and its tests need on Debian 12 / Python 3.11 (root). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need_apt=()
command -v /usr/sbin/sshd >/dev/null || need_apt+=(openssh-server)
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64-static >/dev/null || need_apt+=(qemu-user-static)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v pgrep >/dev/null || need_apt+=(procps)
command -v strace >/dev/null || need_apt+=(strace)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
mkdir -p -m 0755 /run/sshd

# Exact versions come from constraints.txt (pyproject.toml only bounds them).
# torch first and pinned: anything looser pulls a multi-GB CUDA build.
PIP=("$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore -c constraints.txt)
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[torch,tvm,test]"
