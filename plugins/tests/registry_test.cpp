// How libtrtnet_plugins.so gets its creators into TensorRT's registry, on every route users
// load it by, checked against a fake registry that this executable exports as
// getPluginRegistry (link with -rdynamic). Like TensorRT's, the fake's calls are
// "synchronized by a mutex" (NvInferRuntimeCommon.h); it is non-recursive and refuses (and
// counts) re-entry instead of deadlocking, and refuses (and counts) a second registration.
//
//   registry_test LIB loadLibrary   IPluginRegistry::loadLibrary as TensorRT does it (C++,
//                                   Python registry.load_library, trtexec --dynamicPlugins):
//                                   under the registry mutex dlopen, setLoggerFinder,
//                                   getCreators, register each
//   registry_test LIB init          dlopen / ctypes.CDLL / linking, then trtnetInitPlugins()
//                                   (twice: idempotent), then loadLibrary must be refused
//   registry_test LIB onload        dlopen with TRTNET_PLUGINS_REGISTER_ON_LOAD=1 (Triton's
//                                   TensorRT backend plugins=, which only dlopens)
//   registry_test LIB preload       the executable run with LD_PRELOAD=LIB and the variable
//                                   set: registered before main (LD_PRELOAD, trtexec --staticPlugins)
//   registry_test LIB local FAKE    like Python: libnvinfer (FAKE = this file built with
//                                   -DTRTNET_FAKE_NVINFER as libnvinfer.so.<major>) is loaded
//                                   RTLD_LOCAL, so only dlopen(RTLD_NOLOAD) finds it
//                                   (build this executable without -rdynamic for it)
//   registry_test LIB mismatch      the process's getInferLibVersion reports another major:
//                                   nothing is registered, by any route, with a clear error
//
// LIB is a host-only build of the plugin library (launchers stubbed, no CUDA).
#include <NvInferRuntime.h>

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
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
    int reentries = 0;

    bool registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const ns) noexcept override {
        std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
        if (!lock.owns_lock()) return reentered("registerCreator");
        return add(creator, ns);
    }
    IPluginCreatorInterface* const* getAllCreators(int32_t* const n) const noexcept override {
        list_.clear();
        for (auto const& e : entries) list_.push_back(e.creator);
        *n = int32_t(list_.size());
        return list_.data();
    }
    IPluginCreatorInterface* getCreator(AsciiChar const* const name, AsciiChar const* const version,
                                        AsciiChar const* const ns = "") noexcept override {
        std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
        if (!lock.owns_lock()) {
            reentered("getCreator");
            return nullptr;
        }
        return find(name, version, ns);
    }
    bool deregisterCreator(IPluginCreatorInterface const& creator) noexcept override {
        std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
        if (!lock.owns_lock()) return reentered("deregisterCreator");
        for (size_t i = 0; i < entries.size(); ++i) {
            if (entries[i].creator == &creator) {
                entries.erase(entries.begin() + long(i));
                return true;
            }
        }
        return false;
    }
    // What TensorRT's loader does, all under the registry mutex: dlopen, setLoggerFinder,
    // getCreators, register every creator; nullptr when any
    // of them is already registered.
    PluginLibraryHandle loadLibrary(AsciiChar const* path) noexcept override {
        std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
        if (!lock.owns_lock()) {
            reentered("loadLibrary");
            return nullptr;
        }
        void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) return nullptr;
        using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
        auto get = reinterpret_cast<GetCreators>(dlsym(handle, "getCreators"));
        if (get == nullptr) return nullptr;
        int32_t n = 0;
        IPluginCreatorInterface* const* list = get(n);
        for (int32_t i = 0; i < n; ++i) {
            auto* c = static_cast<IPluginCreatorV3One*>(list[i]);
            if (!add(*list[i], c->getPluginNamespace())) return nullptr;
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
    bool reentered(char const* what) {
        ++reentries;
        std::printf("fake registry: %s re-entered the registry (would deadlock in TensorRT)\n", what);
        return false;
    }
    IPluginCreatorInterface* find(AsciiChar const* name, AsciiChar const* version, AsciiChar const* ns) {
        for (auto const& e : entries) {
            auto* c = static_cast<IPluginCreatorV3One*>(e.creator);
            if (std::strcmp(c->getPluginName(), name) == 0 && std::strcmp(c->getPluginVersion(), version) == 0 &&
                e.ns == (ns ? ns : ""))
                return e.creator;
        }
        return nullptr;
    }
    bool add(IPluginCreatorInterface& creator, AsciiChar const* ns) {
        auto* c = static_cast<IPluginCreatorV3One*>(&creator);
        if (find(c->getPluginName(), c->getPluginVersion(), ns) != nullptr) {
            ++duplicates;
            return false;
        }
        entries.push_back({&creator, ns ? ns : ""});
        return true;
    }
    std::mutex mutex_;
    mutable std::vector<IPluginCreatorInterface*> list_;
};

// Constructed on first use: a preloaded library's initializer may ask for it before this
// executable's own static initializers ran (as libnvinfer's registry is usable by then).
static FakeRegistry& fake_registry() {
    static FakeRegistry registry;
    return registry;
}
#define g_registry fake_registry()

extern "C" __attribute__((visibility("default"))) IPluginRegistry* getPluginRegistry() noexcept { return &g_registry; }

// The TensorRT version this fake "libnvinfer" reports: the headers' own, or FAKE_TRT_VERSION.
extern "C" __attribute__((visibility("default"))) int32_t getInferLibVersion() noexcept {
    char const* v = std::getenv("FAKE_TRT_VERSION");
    return v != nullptr ? std::atoi(v) : (NV_TENSORRT_MAJOR * 100 + NV_TENSORRT_MINOR) * 100 + NV_TENSORRT_PATCH;
}

#ifndef TRTNET_FAKE_NVINFER

static int g_failures = 0;
#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            std::printf("FAIL line %d: %s\n", __LINE__, #cond);         \
            ++g_failures;                                                \
        }                                                                \
    } while (0)

static int32_t count_of(IPluginRegistry& registry) {
    int32_t n = 0;
    registry.getAllCreators(&n);
    return n;
}

static void check_registered(IPluginRegistry& registry) {
    CHECK(count_of(registry) == 2);
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

template <typename F>
static F entry(void* handle, char const* name) {
    return reinterpret_cast<F>(dlsym(handle, name));
}

static void* open_library(char const* path) {
    void* handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (handle == nullptr) std::printf("dlopen failed: %s\n", dlerror());
    return handle;
}

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s LIB loadLibrary|init|onload|preload|local|mismatch [FAKE_NVINFER]\n", argv[0]);
        return 2;
    }
    std::string mode = argv[2];
    using Init = bool (*)();
    using Registered = int32_t (*)();
    if (mode == "loadLibrary") {
        CHECK(g_registry.loadLibrary(argv[1]) != nullptr);
        check_registered(g_registry);
        void* handle = dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD);
        CHECK(handle != nullptr && entry<Registered>(handle, "trtnetPluginsRegistered")() == 0);  // the loader did it
        // A second load of the same library is refused (already registered), not a crash.
        CHECK(g_registry.loadLibrary(argv[1]) == nullptr);
        g_registry.duplicates = 0;  // that refusal is the registry's own duplicate check
    } else if (mode == "init") {
        void* handle = open_library(argv[1]);
        if (handle == nullptr) return 1;
        CHECK(count_of(g_registry) == 0);  // nothing happens on a plain dlopen
        auto init = entry<Init>(handle, "trtnetInitPlugins");
        CHECK(init != nullptr && init() && init());  // idempotent
        CHECK(entry<Registered>(handle, "trtnetPluginsRegistered")() == 2);
        check_registered(g_registry);
        CHECK(g_registry.loadLibrary(argv[1]) == nullptr);  // one route per process: loadLibrary refuses
        g_registry.duplicates = 0;
    } else if (mode == "onload") {
        setenv("TRTNET_PLUGINS_REGISTER_ON_LOAD", "1", 1);
        void* handle = open_library(argv[1]);
        if (handle == nullptr) return 1;
        CHECK(entry<Registered>(handle, "trtnetPluginsRegistered")() == 2);
        check_registered(g_registry);
    } else if (mode == "preload") {
        CHECK(count_of(g_registry) == 2);  // registered by the preloaded library before main
        check_registered(g_registry);
    } else if (mode == "local" && argc == 4) {
        void* nvinfer = dlopen(argv[3], RTLD_NOW | RTLD_LOCAL);
        if (nvinfer == nullptr) {
            std::printf("dlopen of the fake libnvinfer failed: %s\n", dlerror());
            return 1;
        }
        CHECK(dlsym(RTLD_DEFAULT, "getPluginRegistry") == nullptr);  // really not global
        auto get = reinterpret_cast<IPluginRegistry* (*)()>(dlsym(nvinfer, "getPluginRegistry"));
        void* handle = open_library(argv[1]);
        if (get == nullptr || handle == nullptr) return 1;
        CHECK(entry<Init>(handle, "trtnetInitPlugins")());
        check_registered(*get());
    } else if (mode == "mismatch") {
        // FAKE_TRT_VERSION is another major: every route registers nothing and says why.
        void* handle = open_library(argv[1]);
        if (handle == nullptr) return 1;
        CHECK(!entry<Init>(handle, "trtnetInitPlugins")());
        CHECK(g_registry.loadLibrary(argv[1]) != nullptr);  // the loader gets an empty list
        CHECK(count_of(g_registry) == 0);
    } else {
        return 2;
    }
    CHECK(g_registry.duplicates == 0);
    CHECK(g_registry.reentries == 0);
    std::printf(g_failures == 0 ? "registry (%s): all checks passed\n" : "registry (%s): FAILED\n", mode.c_str());
    return g_failures == 0 ? 0 : 1;
}
#endif  // TRTNET_FAKE_NVINFER
