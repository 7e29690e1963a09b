// libtrtnet_plugins.so entry points: one library, every route users load it by.
//
// * getCreators / setLoggerFinder: what IPluginRegistry::loadLibrary
//   (C++ runtime, Python registry.load_library, trtexec --dynamicPlugins, plans with
//   serialized plugin libraries) looks for. loadLibrary holds the registry's mutex
//   (NvInferRuntimeCommon.h: registry calls "will be synchronized by a mutex") while it
//   dlopens us and calls these, so they never call back into the registry: getCreators only
//   hands out the list (side-effect free), and the static initializer registers nothing by
//   default. These two are the whole V3 plugin-library interface: NVIDIA's own V3 library
//   exports only them (NVIDIA/TensorRT plugin/vc/vfcCommon.cpp, getCreators and
//   setLoggerFinder), and trtexec's documentation lists only them (samples/trtexec/README.md,
//   "Using your own Plugin": getPluginCreators is "also valid, but deprecated"). No documented
//   loader needs the deprecated name, so it is not exported.
// * trtnetInitPlugins(): explicit registration for routes that only dlopen or link the
//   library (TensorRT-LLM's initTrtLlmPlugins pattern): finds the process's libnvinfer,
//   checks its version against the headers this was compiled with, registers each creator
//   that is not registered yet. Idempotent; never call it from inside loadLibrary.
// * TRTNET_PLUGINS_REGISTER_ON_LOAD=1 in the environment: the static initializer calls
//   trtnetInitPlugins() (routes that cannot call a function: LD_PRELOAD, Triton's TensorRT
//   backend `plugins=`, trtexec --staticPlugins). Only for processes that never also
//   loadLibrary() this library.
//
// libnvinfer is never linked: it is found by the soname of the TensorRT major these headers
// are (NV_TENSORRT_MAJOR; the 10.x and 11.x IPluginRegistry vtables differ), and
// getInferLibVersion() must report that major.
#include <NvInferRuntime.h>

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>

#include "common/plugin_utils.h"
#include "fast_nms/fast_nms_plugin.h"
#include "inverse_warp/inverse_warp_plugin.h"

namespace trtnet {
namespace plugin {
namespace {

std::mutex g_mutex;  // guards the logger finder and the registration state; never held across registry calls
nvinfer1::ILoggerFinder* g_logger_finder = nullptr;
int32_t g_registered = 0;  // creators trtnetInitPlugins() registered (or found registered)

#define TRTNET_STR2(x) #x
#define TRTNET_STR(x) TRTNET_STR2(x)
constexpr char const* kNvinferSoname = "libnvinfer.so." TRTNET_STR(NV_TENSORRT_MAJOR);

using GetRegistryFn = nvinfer1::IPluginRegistry* (*)();
using GetVersionFn = int32_t (*)();

nvinfer1::IPluginCreatorInterface* const* creators(int32_t& count) {
    static InverseWarpCreator inverse_warp;
    static FastNMSCreator fast_nms;
    static nvinfer1::IPluginCreatorInterface* const list[] = {&inverse_warp, &fast_nms};
    count = 2;
    return list;
}

// A symbol of the libnvinfer already in the process (global, or loaded RTLD_LOCAL as the
// tensorrt Python module does: dlopen(RTLD_NOLOAD) of this major's soname), or nullptr.
void* nvinfer_symbol(char const* name) {
    if (void* sym = dlsym(RTLD_DEFAULT, name)) return sym;
    void* handle = dlopen(kNvinferSoname, RTLD_LAZY | RTLD_NOLOAD);  // only if already loaded
    if (handle == nullptr) return nullptr;
    void* sym = dlsym(handle, name);
    dlclose(handle);  // drops the extra reference NOLOAD took
    return sym;
}

// Empty when the process's libnvinfer is the major these headers are; else the reason.
std::string version_mismatch() {
    auto version = reinterpret_cast<GetVersionFn>(nvinfer_symbol("getInferLibVersion"));
    if (version == nullptr) return {};  // not loaded (yet): nothing to compare
    const int32_t v = version();  // (MAJOR * 100 + MINOR) * 100 + PATCH (NvInferRuntimeBase.h)
    if (v / 10000 == NV_TENSORRT_MAJOR) return {};
    return "libtrtnet_plugins.so was compiled against TensorRT " TRTNET_STR(NV_TENSORRT_MAJOR) ".x headers but "
           "this process runs libnvinfer " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
           std::to_string(v % 100) + "; rebuild it with TensorRT_ROOT pointing at that TensorRT";
}

}  // namespace

void set_logger_finder(nvinfer1::ILoggerFinder* finder) noexcept {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_logger_finder == nullptr) g_logger_finder = finder;
}

nvinfer1::ILogger* logger() noexcept {
    std::lock_guard<std::mutex> lock(g_mutex);
    return g_logger_finder != nullptr ? g_logger_finder->findLogger() : nullptr;
}

// Registers both creators with the process's registry, each only if not registered yet.
bool init_plugins() noexcept {
    std::string problem = version_mismatch();
    if (!problem.empty()) {
        log_error(problem);
        return false;
    }
    auto get = reinterpret_cast<GetRegistryFn>(nvinfer_symbol("getPluginRegistry"));
    nvinfer1::IPluginRegistry* registry = get != nullptr ? get() : nullptr;
    if (registry == nullptr) {
        log_error(std::string("trtnetInitPlugins: TensorRT is not loaded in this process (") + kNvinferSoname +
                  "); load TensorRT first");
        return false;
    }
    int32_t count = 0;
    nvinfer1::IPluginCreatorInterface* const* list = creators(count);
    int32_t present = 0;
    for (int32_t i = 0; i < count; ++i) {  // no lock of ours is held while the registry runs
        auto* c = static_cast<nvinfer1::IPluginCreatorV3One*>(list[i]);
        if (registry->getCreator(c->getPluginName(), c->getPluginVersion(), c->getPluginNamespace()) != nullptr ||
            registry->registerCreator(*list[i], c->getPluginNamespace())) {
            ++present;
        } else {
            log_error(std::string("the plugin registry refused ") + c->getPluginName());
        }
    }
    std::lock_guard<std::mutex> lock(g_mutex);
    g_registered = present;
    return present == count;
}

namespace {
// TRTNET_PLUGINS_REGISTER_ON_LOAD=1: register from the static initializer (dlopen-only routes).
struct RegisterOnLoad {
    RegisterOnLoad() {
        char const* env = std::getenv("TRTNET_PLUGINS_REGISTER_ON_LOAD");
        if (env != nullptr && std::string(env) == "1") init_plugins();
    }
} g_register_on_load;
}  // namespace

}  // namespace plugin
}  // namespace trtnet

extern "C" {

__attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
    trtnet::plugin::set_logger_finder(finder);
}

// For loadLibrary: the creators, nothing else (no registry call, no state change). Empty
// when the process runs another TensorRT major than the headers (the reason is logged).
__attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    std::string problem = trtnet::plugin::version_mismatch();
    if (!problem.empty()) {
        trtnet::plugin::log_error(problem);
        nbCreators = 0;
        return nullptr;
    }
    return trtnet::plugin::creators(nbCreators);
}

// Explicit registration (dlopen / link routes); true when both creators are registered.
__attribute__((visibility("default"))) bool trtnetInitPlugins() { return trtnet::plugin::init_plugins(); }

// Number of creators trtnetInitPlugins() (explicit or on load) got registered; 0 when it never ran.
__attribute__((visibility("default"))) int32_t trtnetPluginsRegistered() {
    std::lock_guard<std::mutex> lock(trtnet::plugin::g_mutex);
    return trtnet::plugin::g_registered;
}

}  // extern "C"
