// libtrtnet_plugins.so entry points.
//
// * getCreators / getPluginCreators / setLoggerFinder: what TensorRT's plugin registry
//   loadLibrary(), trtexec --dynamicPlugins and engines with serialized plugin libraries
//   look for.
// * Registration on load: when the library is loaded into a process that already holds
//   TensorRT (libnvinfer, found without linking against it), a static initializer
//   registers both creators, so dlopen / ctypes.CDLL / linking it is enough. Because
//   loadLibrary() fails when a creator is already registered, getCreators() first
//   deregisters what the initializer registered and hands the creators to the loader.
#include <NvInferRuntime.h>

#include <dlfcn.h>

#include <mutex>

#include "common/plugin_utils.h"
#include "fast_nms/fast_nms_plugin.h"
#include "inverse_warp/inverse_warp_plugin.h"

namespace trtnet {
namespace plugin {
namespace {

std::mutex g_mutex;
nvinfer1::ILoggerFinder* g_logger_finder = nullptr;
bool g_auto_registered = false;
nvinfer1::IPluginRegistry* g_registry = nullptr;

using GetRegistryFn = nvinfer1::IPluginRegistry* (*)();

nvinfer1::IPluginCreatorInterface* const* creators(int32_t& count) {
    static InverseWarpCreator inverse_warp;
    static FastNMSCreator fast_nms;
    static nvinfer1::IPluginCreatorInterface* const list[] = {&inverse_warp, &fast_nms};
    count = 2;
    return list;
}

// getPluginRegistry of an already loaded libnvinfer, or nullptr.
GetRegistryFn find_registry_function() {
    if (void* sym = dlsym(RTLD_DEFAULT, "getPluginRegistry")) return reinterpret_cast<GetRegistryFn>(sym);
    for (char const* name : {"libnvinfer.so.11", "libnvinfer.so.10", "libnvinfer.so"}) {
        void* handle = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);  // only if already in the process
        if (handle == nullptr) continue;
        void* sym = dlsym(handle, "getPluginRegistry");
        dlclose(handle);  // drops the extra reference NOLOAD took
        if (sym != nullptr) return reinterpret_cast<GetRegistryFn>(sym);
    }
    return nullptr;
}

struct AutoRegister {
    AutoRegister() {
        GetRegistryFn get = find_registry_function();
        nvinfer1::IPluginRegistry* registry = get != nullptr ? get() : nullptr;
        if (registry == nullptr) return;
        int32_t count = 0;
        nvinfer1::IPluginCreatorInterface* const* list = creators(count);
        std::lock_guard<std::mutex> lock(g_mutex);
        bool all = true;
        for (int32_t i = 0; i < count; ++i) all = registry->registerCreator(*list[i], kNamespace) && all;
        g_auto_registered = all;
        g_registry = registry;
    }
};

AutoRegister g_auto_register;

}  // namespace

void set_logger_finder(nvinfer1::ILoggerFinder* finder) noexcept {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_logger_finder == nullptr) g_logger_finder = finder;
}

nvinfer1::ILogger* logger() noexcept {
    std::lock_guard<std::mutex> lock(g_mutex);
    return g_logger_finder != nullptr ? g_logger_finder->findLogger() : nullptr;
}

}  // namespace plugin
}  // namespace trtnet

extern "C" {

__attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
    trtnet::plugin::set_logger_finder(finder);
}

__attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    using namespace trtnet::plugin;
    nvinfer1::IPluginCreatorInterface* const* list = creators(nbCreators);
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_auto_registered && g_registry != nullptr) {
        for (int32_t i = 0; i < nbCreators; ++i) g_registry->deregisterCreator(*list[i]);
        g_auto_registered = false;
    }
    return list;
}

// Deprecated name of the same entry point, still probed by older loaders.
__attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getPluginCreators(int32_t& nbCreators) {
    return getCreators(nbCreators);
}

// Number of creators the static initializer registered (0 when TensorRT was not loaded
// first); for programs and tests that want to know how the plugins got registered.
__attribute__((visibility("default"))) int32_t trtnetPluginsAutoRegistered() {
    std::lock_guard<std::mutex> lock(trtnet::plugin::g_mutex);
    return trtnet::plugin::g_auto_registered ? 2 : 0;
}

}  // extern "C"
