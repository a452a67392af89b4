{
  "variables": {
    "have_jpeg%": "<!(sh ./has-jpeg.sh)"
  },
  "targets": [
    {
      "target_name": "gpufeed_native",
      "sources": ["src/addon.cc", "src/registry.cc", "src/pinning.cc", "src/maps.cc", "src/fault-guard.cc", "src/crc32.cc", "src/map-hash.cc", "src/jpeg-crop.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "_GNU_SOURCE"
      ],
      "cflags_cc": ["-std=c++17", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags": ["-fvisibility=hidden"],
      "libraries": ["-ldl"],
      "conditions": [
        ["have_jpeg==1", {
          "defines": ["GPUFEED_HAVE_JPEG"],
          "libraries": ["-ljpeg"]
        }]
      ]
    }
  ]
}
