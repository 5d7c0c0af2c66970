{
  "targets": [
    {
      "target_name": "faiss-node",
      "sources": ["src/faiss.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": [
        "-std=c++17", "-O3", "-fopenmp",
        "-include", "<(module_root_dir)/upnext_compat.h",
        "<!@(node -p \"process.env.UPNEXT_FAISS_CFLAGS || '-DUPNEXT_FAISS_BUILD_DEBIAN'\")"
      ],
      "ldflags": ["-Wl,--exclude-libs,ALL"],
      "libraries": ["<!@(node -p \"process.env.UPNEXT_FAISS_LIB || '-lfaiss'\")", "-lblas", "-llapack", "-lgomp"]
    }
  ]
}
