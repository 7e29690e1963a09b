// How libtrtnet_plugins.so gets its creators into TensorRT's registry, checked against a
// fake registry that this executable exports as getPluginRegistry (link with -rdynamic):
//
//   registry_test LIB dlopen        dlopen / ctypes.CDLL / linking: the library's static
//                                   initializer registers both creators by itself
//   registry_test LIB loadLibrary   IPluginRegistry::loadLibrary as TensorRT does it (and
//                                   trtexec --dynamicPlugins): dlopen, then getCreators(),
//                                   register each, failing on a duplicate -- the
//                                   initializer's registration must not cause one
//   registry_test LIB local FAKE    like Python: libnvinfer (FAKE = this file built with
//                                   -DTRTNET_FAKE_NVINFER as libnvinfer.so.11) is loaded
//                                   RTLD_LOCAL, so only dlopen(RTLD_NOLOAD) finds it
//                                   (build this executable without -rdynamic for it)
//
// LIB is a host-only build of the plugin library (launchers stubbed, no CUDA).
#include <NvInferRuntime.h>

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace nvinfer1;

class FakeRegistry : public IPluginRegistry {
public:
    struct Entry {
        IPluginCreatorInterface* creator;
        std::string ns;
    };
    std::vector<Entry> entries;
    int duplicates = 0;

    bool registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const ns) noexcept override {
        auto* c = static_cast<IPluginCreatorV3One*>(&creator);
        if (getCreator(c->getPluginName(), c->getPluginVersion(), ns) != nullptr) {
            ++duplicates;
            return false;
        }
        entries.push_back({&creator, ns ? ns : ""});
        return true;
    }
    IPluginCreatorInterface* const* getAllCreators(int32_t* const n) const noexcept override {
        list_.clear();
        for (auto const& e : entries) list_.push_back(e.creator);
        *n = int32_t(list_.size());
        return list_.data();
    }
    IPluginCreatorInterface* getCreator(AsciiChar const* const name, AsciiChar const* const version,
                                        AsciiChar const* const ns = "") noexcept override {
        for (auto const& e : entries) {
            auto* c = static_cast<IPluginCreatorV3One*>(e.creator);
            if (std::strcmp(c->getPluginName(), name) == 0 && std::strcmp(c->getPluginVersion(), version) == 0 &&
                e.ns == (ns ? ns : ""))
                return e.creator;
        }
        return nullptr;
    }
    bool deregisterCreator(IPluginCreatorInterface const& creator) noexcept override {
        for (size_t i = 0; i < entries.size(); ++i) {
            if (entries[i].creator == &creator) {
                entries.erase(entries.begin() + long(i));
                return true;
            }
        }
        return false;
    }
    // What TensorRT's loader does: dlopen, getCreators (getPluginCreators as fallback),
    // register every creator; nullptr when any of them is already registered.
    PluginLibraryHandle loadLibrary(AsciiChar const* path) noexcept override {
        void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) return nullptr;
        using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
        auto get = reinterpret_cast<GetCreators>(dlsym(handle, "getCreators"));
        if (get == nullptr) get = reinterpret_cast<GetCreators>(dlsym(handle, "getPluginCreators"));
        if (get == nullptr) return nullptr;
        int32_t n = 0;
        IPluginCreatorInterface* const* list = get(n);
        for (int32_t i = 0; i < n; ++i) {
            auto* c = static_cast<IPluginCreatorV3One*>(list[i]);
            if (!registerCreator(*list[i], c->getPluginNamespace())) return nullptr;
        }
        return handle;
    }
    void deregisterLibrary(PluginLibraryHandle) noexcept override {}
    void setErrorRecorder(IErrorRecorder* const) noexcept override {}
    IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
    bool isParentSearchEnabled() const override { return false; }
    void setParentSearchEnabled(bool const) override {}
    IPluginResource* acquirePluginResource(AsciiChar const*, IPluginResource*) noexcept override { return nullptr; }
    int32_t releasePluginResource(AsciiChar const*) noexcept override { return 0; }
#if NV_TENSORRT_MAJOR >= 11
    IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const n) noexcept override {
        return getAllCreators(n);
    }
#else
    bool registerCreator(IPluginCreator&, AsciiChar const* const) noexcept override { return false; }
    IPluginCreator* const* getPluginCreatorList(int32_t* const n) const noexcept override {
        *n = 0;
        return nullptr;
    }
    IPluginCreator* getPluginCreator(AsciiChar const* const, AsciiChar const* const,
                                     AsciiChar const* const = "") noexcept override {
        return nullptr;
    }
    bool deregisterCreator(IPluginCreator const&) noexcept override { return false; }
#endif

private:
    mutable std::vector<IPluginCreatorInterface*> list_;
};

static FakeRegistry g_registry;

extern "C" __attribute__((visibility("default"))) IPluginRegistry* getPluginRegistry() noexcept { return &g_registry; }

#ifndef TRTNET_FAKE_NVINFER

static int g_failures = 0;
#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            std::printf("FAIL line %d: %s\n", __LINE__, #cond);         \
            ++g_failures;                                                \
        }                                                                \
    } while (0)

static void check_registered(IPluginRegistry& registry) {
    int32_t n = 0;
    registry.getAllCreators(&n);
    CHECK(n == 2);
    for (char const* name : {"FastNMS", "InverseWarp"}) {
        auto* c = static_cast<IPluginCreatorV3One*>(registry.getCreator(name, "1", "trtnet"));
        CHECK(c != nullptr);
        if (c == nullptr) continue;
        std::unique_ptr<IPluginV3> plugin(c->createPlugin(name, nullptr, TensorRTPhase::kBUILD));
        CHECK(plugin != nullptr);
        std::printf("registered %s/%s in namespace %s: plugin created\n", c->getPluginName(), c->getPluginVersion(),
                    c->getPluginNamespace());
    }
}

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s LIB dlopen|loadLibrary|local [FAKE_NVINFER]\n", argv[0]);
        return 2;
    }
    std::string mode = argv[2];
    if (mode == "dlopen") {
        void* handle = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
        if (handle == nullptr) {
            std::printf("dlopen failed: %s\n", dlerror());
            return 1;
        }
        auto count = reinterpret_cast<int32_t (*)()>(dlsym(handle, "trtnetPluginsAutoRegistered"));
        CHECK(count != nullptr && count() == 2);
        CHECK(g_registry.duplicates == 0);
        check_registered(g_registry);
    } else if (mode == "loadLibrary") {
        IPluginRegistry::PluginLibraryHandle handle = g_registry.loadLibrary(argv[1]);
        CHECK(handle != nullptr);
        CHECK(g_registry.duplicates == 0);
        check_registered(g_registry);
        // A second load of the same library must be refused (already registered), not crash.
        CHECK(g_registry.loadLibrary(argv[1]) == nullptr);
    } else if (mode == "local" && argc == 4) {
        void* nvinfer = dlopen(argv[3], RTLD_NOW | RTLD_LOCAL);
        if (nvinfer == nullptr) {
            std::printf("dlopen of the fake libnvinfer failed: %s\n", dlerror());
            return 1;
        }
        CHECK(dlsym(RTLD_DEFAULT, "getPluginRegistry") == nullptr);  // really not global
        auto get = reinterpret_cast<IPluginRegistry* (*)()>(dlsym(nvinfer, "getPluginRegistry"));
        void* handle = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
        if (get == nullptr || handle == nullptr) {
            std::printf("dlopen failed: %s\n", dlerror());
            return 1;
        }
        auto count = reinterpret_cast<int32_t (*)()>(dlsym(handle, "trtnetPluginsAutoRegistered"));
        CHECK(count != nullptr && count() == 2);
        check_registered(*get());
    } else {
        return 2;
    }
    std::printf(g_failures == 0 ? "registry (%s): all checks passed\n" : "registry (%s): FAILED\n", mode.c_str());
    return g_failures == 0 ? 0 : 1;
}
#endif  // TRTNET_FAKE_NVINFER
