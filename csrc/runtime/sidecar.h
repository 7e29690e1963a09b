// The JSON sidecar next to every engine (ENGINE + ".json", written by python -m trtnet.build):
// which config and classes, which role, which TensorRT and GPU built it. A small strict JSON
// reader (no dependency); a malformed file is an Error(kSidecar) naming the file and offset.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "trtnet.h"

namespace trtnet {

class Json {
public:
    enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
    Kind kind = Kind::kNull;
    bool boolean = false;
    double number = 0;
    std::string string;
    std::vector<Json> array;
    std::map<std::string, Json> object;

    // Throws std::invalid_argument with the offset of the first error.
    static Json parse(std::string const& text);
    Json const* get(std::string const& key) const;  // nullptr when absent or not an object
};

// Reads `path` into `info` (path, config, role, tensorrt_version, gpu, classes, tensorrt_plugins...).
// Throws Error(kSidecar) when the file is missing, unreadable or malformed.
void read_sidecar(std::string const& path, EngineInfo& info);

// "10.3.0" -> 100300 (getInferLibVersion's encoding); -1 if not a version.
int32_t parse_tensorrt_version(std::string const& text);
std::string format_tensorrt_version(int32_t version);

}  // namespace trtnet
