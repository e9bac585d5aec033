# The optional native addon (docs/native.md). Linux only: eventfd, memfd, mmap over the Wasm
# memory, SCM_RIGHTS and sendmmsg/recvmmsg are Linux interfaces.
# have_verbs is decided at configure time by probe-verbs.sh: 1 only when infiniband/verbs.h
# compiles and libibverbs links, so a host without rdma-core still builds the addon.
{
  "variables": {
    "have_verbs%": "<!(sh ./probe-verbs.sh)"
  },
  "targets": [
    {
      "target_name": "vrdma_native",
      "sources": [
        "src/addon.cc",
        "src/common.cc",
        "src/crc32.cc",
        "src/region.cc",
        "src/fd.cc",
        "src/fd_watch.cc",
        "src/eventfd.cc",
        "src/mapping.cc",
        "src/unix_socket.cc",
        "src/udp.cc",
        "src/verbs.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "conditions": [
        ["have_verbs==1", {
          "defines": ["VRDMA_HAVE_VERBS=1"],
          "libraries": ["-libverbs"]
        }]
      ]
    }
  ]
}
