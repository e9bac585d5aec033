#!/bin/sh
# Prints 1 when a program using libibverbs compiles and links here, else 0 (binding.gyp).
# Runs at node-gyp configure time; it never fails, so a host without rdma-core still builds.
dir=$(mktemp -d 2>/dev/null) || { echo 0; exit 0; }
cat > "$dir/probe.c" <<'SRC'
#include <infiniband/verbs.h>
int main(void) { int n = 0; struct ibv_device **l = ibv_get_device_list(&n); ibv_free_device_list(l); return n < 0; }
SRC
if ${CC:-cc} "$dir/probe.c" -o "$dir/probe" -libverbs >/dev/null 2>&1; then echo 1; else echo 0; fi
rm -rf "$dir"
