// Small helpers shared by trtnet's IPluginV3 implementations: logging through the logger
// TensorRT hands us (setLoggerFinder), typed field reading, and the field collection each
// plugin serializes through. Header-only; uses only API present in TensorRT 10.3 and 11.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace trtnet {
namespace plugin {

constexpr char const* kNamespace = "trtnet";
constexpr char const* kVersion = "1";

// Logger from TensorRT (set by setLoggerFinder); stderr when none was given.
nvinfer1::ILogger* logger() noexcept;
void set_logger_finder(nvinfer1::ILoggerFinder* finder) noexcept;

inline void log_error(std::string const& msg) noexcept {
    std::string text = "trtnet plugin: " + msg;
    if (nvinfer1::ILogger* l = logger()) {
        l->log(nvinfer1::ILogger::Severity::kERROR, text.c_str());
    } else {
        std::fprintf(stderr, "[E] %s\n", text.c_str());
    }
}

// Reads a scalar field as T from any int/float field type (an integer field must hold
// an integral value in range); false with a logged reason otherwise.
template <typename T>
bool read_scalar(nvinfer1::PluginField const& f, T& out) noexcept {
    using nvinfer1::PluginFieldType;
    if (f.data == nullptr || f.length < 1) {
        log_error(std::string("field '") + f.name + "' has no value");
        return false;
    }
    double v = 0.0;
    switch (f.type) {
    case PluginFieldType::kFLOAT32: v = *static_cast<float const*>(f.data); break;
    case PluginFieldType::kFLOAT64: v = *static_cast<double const*>(f.data); break;
    case PluginFieldType::kINT32: v = *static_cast<int32_t const*>(f.data); break;
    case PluginFieldType::kINT64: v = double(*static_cast<int64_t const*>(f.data)); break;
    case PluginFieldType::kINT16: v = *static_cast<int16_t const*>(f.data); break;
    case PluginFieldType::kINT8: v = *static_cast<int8_t const*>(f.data); break;
    default:
        log_error(std::string("field '") + f.name + "' has an unsupported type");
        return false;
    }
    if constexpr (std::is_integral<T>::value) {
        if (!(v >= double(std::numeric_limits<T>::min()) && v <= double(std::numeric_limits<T>::max())) ||
            v != double(static_cast<long long>(v))) {
            log_error(std::string("field '") + f.name + "' must be an integer that fits int32");
            return false;
        }
    }
    out = static_cast<T>(v);
    return true;
}

// Fields a plugin serializes: owns the values, exposes a PluginFieldCollection.
class FieldWriter {
public:
    void add_int(char const* name, int32_t v) { ints_.push_back({name, v}); }
    void add_float(char const* name, float v) { floats_.push_back({name, v}); }
    nvinfer1::PluginFieldCollection const* collection() {
        fields_.clear();
        for (auto& e : ints_) fields_.emplace_back(e.name, &e.value, nvinfer1::PluginFieldType::kINT32, 1);
        for (auto& e : floats_) fields_.emplace_back(e.name, &e.value, nvinfer1::PluginFieldType::kFLOAT32, 1);
        fc_.nbFields = static_cast<int32_t>(fields_.size());
        fc_.fields = fields_.data();
        return &fc_;
    }
    void clear() {
        ints_.clear();
        floats_.clear();
    }

private:
    struct Int { char const* name; int32_t value; };
    struct Float { char const* name; float value; };
    std::vector<Int> ints_;
    std::vector<Float> floats_;
    std::vector<nvinfer1::PluginField> fields_;
    nvinfer1::PluginFieldCollection fc_{};
};

// What every trtnet creator shares: the field names it declares, and the plugin's name,
// version and namespace. A creator derives from CreatorBase<ItsPlugin> and writes only
// createPlugin (reading the fields it declared here).
template <typename Plugin>
class CreatorBase : public nvinfer1::IPluginCreatorV3One {
public:
    using Field = std::pair<char const*, nvinfer1::PluginFieldType>;

    explicit CreatorBase(std::initializer_list<Field> fields) {
        for (Field const& f : fields) fields_.emplace_back(f.first, nullptr, f.second, 1);
        field_names_.nbFields = static_cast<int32_t>(fields_.size());
        field_names_.fields = fields_.data();
    }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &field_names_; }
    char const* getPluginName() const noexcept override { return Plugin::kName; }
    char const* getPluginVersion() const noexcept override { return kVersion; }
    char const* getPluginNamespace() const noexcept override { return kNamespace; }

private:
    std::vector<nvinfer1::PluginField> fields_;
    nvinfer1::PluginFieldCollection field_names_{};
};

inline bool is_float_type(nvinfer1::DataType t) {
    return t == nvinfer1::DataType::kFLOAT || t == nvinfer1::DataType::kHALF;
}

}  // namespace plugin
}  // namespace trtnet
