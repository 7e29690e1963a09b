// Lifecycle test of trtnet's IPluginV3 plugins against TensorRT's headers only (no
// libnvinfer): creators from getCreators(), create / clone / output types and shapes /
// format combinations / workspace / serialize through fields / re-create, and the errors
// for bad fields. The CUDA launchers come from launcher_stubs.cpp (enqueue is not
// exercised: no GPU here). The IExprBuilder is a stub over TensorRT's apiv interfaces.
//
// Build (see tests/test_plugins_lifecycle.py): g++ -std=c++17 -isystem TRT/include
// -isystem CUDA/include -I plugins plugins/tests/plugin_lifecycle_test.cpp
// plugins/tests/launcher_stubs.cpp plugins/trtnet_plugins.cpp plugins/*/*_plugin.cpp
// plugins/*/*_host.cpp -ldl
#include <NvInferRuntime.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fast_nms/fast_nms.h"
#include "fast_nms/fast_nms_plugin.h"
#include "inverse_warp/inverse_warp.h"
#include "inverse_warp/inverse_warp_plugin.h"

using namespace nvinfer1;

extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

// ---- stub expression builder over TensorRT's apiv interfaces ----
class ConstExpr : public IDimensionExpr {
public:
    explicit ConstExpr(int64_t v) : impl_(v) { mImpl = &impl_; }
    ~ConstExpr() noexcept override = default;

private:
    struct Impl : apiv::VDimensionExpr {
        explicit Impl(int64_t v) : value(v) {}
        bool isConstant() const override { return true; }
        int64_t getConstantValue() const override { return value; }
        bool isSizeTensor() const override { return false; }
        int64_t value;
    } impl_;
};

class StubBuilder : public IExprBuilder {
public:
    StubBuilder() : impl_(this) { mImpl = &impl_; }
    ~StubBuilder() noexcept override = default;
    IDimensionExpr const* make(int64_t v) {
        exprs_.emplace_back(new ConstExpr(v));
        return exprs_.back().get();
    }

private:
    struct Impl : apiv::VExprBuilder {
        explicit Impl(StubBuilder* o) : owner(o) {}
        IDimensionExpr const* constant(int64_t value) override { return owner->make(value); }
        IDimensionExpr const* operation(DimensionOperation, IDimensionExpr const&, IDimensionExpr const&) override {
            return nullptr;
        }
        IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override {
            return nullptr;
        }
        StubBuilder* owner;
    } impl_;
    std::vector<std::unique_ptr<ConstExpr>> exprs_;
};

// ---- tiny check harness ----
static int g_failures = 0;
#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);          \
            ++g_failures;                                                        \
        }                                                                        \
    } while (0)

static DimsExprs dims_of(StubBuilder& b, std::vector<int64_t> const& v) {
    DimsExprs d{};
    d.nbDims = int32_t(v.size());
    for (size_t i = 0; i < v.size(); ++i) d.d[i] = b.make(v[i]);
    return d;
}

static std::vector<int64_t> values(DimsExprs const& d) {
    std::vector<int64_t> v;
    for (int i = 0; i < d.nbDims; ++i) v.push_back(d.d[i] && d.d[i]->isConstant() ? d.d[i]->getConstantValue() : -999);
    return v;
}

static DynamicPluginTensorDesc desc(DataType t, std::vector<int64_t> const& dims) {
    DynamicPluginTensorDesc d{};
    d.desc.type = t;
    d.desc.format = TensorFormat::kLINEAR;
    d.desc.dims.nbDims = int32_t(dims.size());
    for (size_t i = 0; i < dims.size(); ++i) d.desc.dims.d[i] = dims[i];
    d.min = d.opt = d.max = d.desc.dims;
    return d;
}

static IPluginCreatorV3One* find_creator(char const* name) {
    int32_t n = 0;
    IPluginCreatorInterface* const* list = getCreators(n);
    for (int32_t i = 0; i < n; ++i) {
        auto* c = static_cast<IPluginCreatorV3One*>(list[i]);
        if (std::strcmp(c->getPluginName(), name) == 0) return c;
    }
    return nullptr;
}

static std::vector<std::string> field_names(PluginFieldCollection const* fc) {
    std::vector<std::string> names;
    for (int i = 0; i < fc->nbFields; ++i) names.push_back(fc->fields[i].name);
    return names;
}

static void test_registry_entry() {
    int32_t n = 0;
    IPluginCreatorInterface* const* list = getCreators(n);
    CHECK(n == 2);
    for (int32_t i = 0; i < n; ++i) {
        CHECK(std::strcmp(list[i]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0);
        auto* c = static_cast<IPluginCreatorV3One*>(list[i]);
        CHECK(std::strcmp(c->getPluginNamespace(), "trtnet") == 0);
        CHECK(std::strcmp(c->getPluginVersion(), "1") == 0);
    }
    std::printf("creators: %s, %s\n", static_cast<IPluginCreatorV3One*>(list[0])->getPluginName(),
                static_cast<IPluginCreatorV3One*>(list[1])->getPluginName());
}

static void test_fast_nms() {
    IPluginCreatorV3One* creator = find_creator("FastNMS");
    CHECK(creator != nullptr);
    if (!creator) return;
    auto names = field_names(creator->getFieldNames());
    CHECK((names == std::vector<std::string>{"top_k", "conf_thresh", "nms_thresh", "max_det", "background_class"}));

    int32_t top_k = 150, max_det = 50, bg = 0;
    float conf = 0.1f, nms = 0.45f;
    PluginField fields[] = {{"top_k", &top_k, PluginFieldType::kINT32, 1},
                            {"conf_thresh", &conf, PluginFieldType::kFLOAT32, 1},
                            {"nms_thresh", &nms, PluginFieldType::kFLOAT32, 1},
                            {"max_det", &max_det, PluginFieldType::kINT32, 1},
                            {"background_class", &bg, PluginFieldType::kINT32, 1}};
    PluginFieldCollection fc{5, fields};
    std::unique_ptr<IPluginV3> plugin(creator->createPlugin("nms", &fc, TensorRTPhase::kBUILD));
    CHECK(plugin != nullptr);
    if (!plugin) return;
    CHECK(std::strcmp(plugin->getInterfaceInfo().kind, "PLUGIN") == 0);
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    CHECK(core && build && runtime);
    CHECK(std::strcmp(core->getInterfaceInfo().kind, "PLUGIN_V3ONE_CORE") == 0);
    CHECK(std::strcmp(build->getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0);
    CHECK(std::strcmp(runtime->getInterfaceInfo().kind, "PLUGIN_V3ONE_RUNTIME") == 0);
    CHECK(std::strcmp(core->getPluginName(), "FastNMS") == 0);
    CHECK(build->getNbOutputs() == 5);

    // output types
    for (DataType t : {DataType::kFLOAT, DataType::kHALF}) {
        DataType in[3] = {t, t, t};
        DataType out[5];
        CHECK(build->getOutputDataTypes(out, 5, in, 3) == 0);
        CHECK(out[0] == DataType::kINT32 && out[1] == t && out[2] == t && out[3] == DataType::kINT32 && out[4] == t);
    }
    // output shapes
    StubBuilder eb;
    DimsExprs in[3] = {dims_of(eb, {2, 19248, 4}), dims_of(eb, {2, 19248, 81}), dims_of(eb, {2, 19248, 32})};
    DimsExprs out[5];
    CHECK(build->getOutputShapes(in, 3, nullptr, 0, out, 5, eb) == 0);
    CHECK((values(out[0]) == std::vector<int64_t>{2}));
    CHECK((values(out[1]) == std::vector<int64_t>{2, 50, 4}));
    CHECK((values(out[2]) == std::vector<int64_t>{2, 50}));
    CHECK((values(out[3]) == std::vector<int64_t>{2, 50}));
    CHECK((values(out[4]) == std::vector<int64_t>{2, 50, 32}));
    DimsExprs bad[3] = {dims_of(eb, {2, 19248, 5}), in[1], in[2]};
    CHECK(build->getOutputShapes(bad, 3, nullptr, 0, out, 5, eb) != 0);

    // formats: float inputs one type, int32 count / classes
    for (DataType t : {DataType::kFLOAT, DataType::kHALF}) {
        DynamicPluginTensorDesc io[8] = {desc(t, {2, 10, 4}), desc(t, {2, 10, 81}), desc(t, {2, 10, 32}),
                                         desc(DataType::kINT32, {2}), desc(t, {2, 50, 4}), desc(t, {2, 50}),
                                         desc(DataType::kINT32, {2, 50}), desc(t, {2, 50, 32})};
        for (int pos = 0; pos < 8; ++pos) CHECK(build->supportsFormatCombination(pos, io, 3, 5));
        DynamicPluginTensorDesc wrong[8];
        std::memcpy(wrong, io, sizeof io);
        wrong[3].desc.type = t;  // count must be int32
        CHECK(!build->supportsFormatCombination(3, wrong, 3, 5));
        wrong[1].desc.type = (t == DataType::kFLOAT) ? DataType::kHALF : DataType::kFLOAT;  // mixed floats
        CHECK(!build->supportsFormatCombination(1, wrong, 3, 5));
    }
    DynamicPluginTensorDesc i8[1] = {desc(DataType::kINT8, {2, 10, 4})};
    CHECK(!build->supportsFormatCombination(0, i8, 3, 5));

    // workspace from the max profile dims
    DynamicPluginTensorDesc ins[3] = {desc(DataType::kFLOAT, {4, 19248, 4}), desc(DataType::kFLOAT, {4, 19248, 81}),
                                      desc(DataType::kFLOAT, {4, 19248, 32})};
    trtnet::nms::Settings s;
    s.top_k = top_k; s.max_det = max_det; s.conf_thresh = conf; s.nms_thresh = nms; s.background_class = bg;
    size_t ws = build->getWorkspaceSize(ins, 3, nullptr, 5);
    CHECK(ws == trtnet::nms::fast_nms_workspace_size(4, 19248, 81, s));
    CHECK(ws > size_t(4) * 80 * 150 * 8);
    std::printf("FastNMS workspace for N=4, A=19248, C=81, top_k=150: %zu bytes\n", ws);

    // runtime shape checks
    PluginTensorDesc rt[3] = {ins[0].desc, ins[1].desc, ins[2].desc};
    CHECK(runtime->onShapeChange(rt, 3, nullptr, 5) == 0);
    rt[2].dims.d[1] = 7;
    CHECK(runtime->onShapeChange(rt, 3, nullptr, 5) != 0);

    // clone and serialize -> re-create (runtime phase) -> same fields
    std::unique_ptr<IPluginV3> copy(plugin->clone());
    CHECK(copy != nullptr);
    auto* copy_rt = static_cast<IPluginV3OneRuntime*>(copy->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    PluginFieldCollection const* ser = copy_rt->getFieldsToSerialize();
    CHECK(ser->nbFields == 5);
    std::unique_ptr<IPluginV3> again(creator->createPlugin("nms", ser, TensorRTPhase::kRUNTIME));
    CHECK(again != nullptr);
    if (again) {
        auto const& t = static_cast<trtnet::plugin::FastNMSPlugin*>(
                            static_cast<IPluginV3OneCore*>(again->getCapabilityInterface(PluginCapabilityType::kCORE)))
                            ->settings();
        CHECK(t.top_k == 150 && t.max_det == 50 && t.background_class == 0 && t.conf_thresh == conf &&
              t.nms_thresh == nms);
    }
    std::unique_ptr<IPluginV3> attached(copy_rt->attachToContext(nullptr));
    CHECK(attached != nullptr);

    // defaults when no fields are given (spec defaults)
    std::unique_ptr<IPluginV3> dflt(creator->createPlugin("nms", nullptr, TensorRTPhase::kBUILD));
    CHECK(dflt != nullptr);
    if (dflt) {
        auto const& t = static_cast<trtnet::plugin::FastNMSPlugin*>(
                            static_cast<IPluginV3OneCore*>(dflt->getCapabilityInterface(PluginCapabilityType::kCORE)))
                            ->settings();
        CHECK(t.top_k == 200 && t.max_det == 100 && t.background_class == 0 && t.conf_thresh == 0.05f &&
              t.nms_thresh == 0.5f);
    }

    // bad fields: unknown name, out-of-range values, non-integral int
    int32_t zero = 0;
    double frac = 2.5;
    PluginField unknown[] = {{"topk", &top_k, PluginFieldType::kINT32, 1}};
    PluginField bad_topk[] = {{"top_k", &zero, PluginFieldType::kINT32, 1}};
    PluginField bad_frac[] = {{"max_det", &frac, PluginFieldType::kFLOAT64, 1}};
    PluginFieldCollection c1{1, unknown}, c2{1, bad_topk}, c3{1, bad_frac};
    std::printf("expected errors follow:\n");
    CHECK(creator->createPlugin("nms", &c1, TensorRTPhase::kBUILD) == nullptr);
    CHECK(creator->createPlugin("nms", &c2, TensorRTPhase::kBUILD) == nullptr);
    CHECK(creator->createPlugin("nms", &c3, TensorRTPhase::kBUILD) == nullptr);
}

static void test_inverse_warp() {
    IPluginCreatorV3One* creator = find_creator("InverseWarp");
    CHECK(creator != nullptr);
    if (!creator) return;
    CHECK((field_names(creator->getFieldNames()) == std::vector<std::string>{"flow_divisor", "num_inputs"}));
    float divisor = 4.0f;
    PluginField fields[] = {{"flow_divisor", &divisor, PluginFieldType::kFLOAT32, 1}};
    PluginFieldCollection fc{1, fields};
    std::unique_ptr<IPluginV3> plugin(creator->createPlugin("warp", &fc, TensorRTPhase::kBUILD));
    CHECK(plugin != nullptr);
    if (!plugin) return;
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    CHECK(core && build && runtime);
    CHECK(std::strcmp(core->getPluginName(), "InverseWarp") == 0);
    CHECK(build->getNbOutputs() == 1);

    for (DataType t : {DataType::kFLOAT, DataType::kHALF}) {
        DataType in[4] = {t, t, t, t};
        DataType out[1];
        CHECK(build->getOutputDataTypes(out, 1, in, 4) == 0 && out[0] == t);
        DynamicPluginTensorDesc io[5] = {desc(t, {1, 256, 35, 35}), desc(t, {1, 2, 35, 35}), desc(t, {1, 256, 35, 35}),
                                         desc(t, {1, 256, 35, 35}), desc(t, {1, 256, 35, 35})};
        for (int pos = 0; pos < 5; ++pos) CHECK(build->supportsFormatCombination(pos, io, 4, 1));
        io[4].desc.format = TensorFormat::kHWC8;
        CHECK(!build->supportsFormatCombination(4, io, 4, 1));
    }
    StubBuilder eb;
    for (int nin = 2; nin <= 4; ++nin) {
        DimsExprs in[4] = {dims_of(eb, {2, 256, 35, 35}), dims_of(eb, {2, 2, 35, 35}), dims_of(eb, {2, 256, 35, 35}),
                           dims_of(eb, {1, 1, 35, 35})};
        DimsExprs out[1];
        CHECK(build->getOutputShapes(in, nin, nullptr, 0, out, 1, eb) == 0);
        CHECK((values(out[0]) == std::vector<int64_t>{2, 256, 35, 35}));
        CHECK(build->configurePlugin(nullptr, nin, nullptr, 1) == 0);
    }
    DimsExprs flow3[2] = {dims_of(eb, {2, 256, 35, 35}), dims_of(eb, {2, 3, 35, 35})};
    DimsExprs out[1];
    std::printf("expected errors follow:\n");
    CHECK(build->getOutputShapes(flow3, 2, nullptr, 0, out, 1, eb) != 0);
    CHECK(build->getOutputShapes(flow3, 1, nullptr, 0, out, 1, eb) != 0);
    CHECK(build->getWorkspaceSize(nullptr, 4, nullptr, 1) == 0);

    PluginTensorDesc rt[4] = {desc(DataType::kFLOAT, {1, 256, 35, 35}).desc, desc(DataType::kFLOAT, {1, 2, 35, 35}).desc,
                              desc(DataType::kFLOAT, {1, 256, 35, 35}).desc, desc(DataType::kFLOAT, {1, 1, 35, 35}).desc};
    CHECK(runtime->onShapeChange(rt, 4, nullptr, 1) == 0);
    rt[2].dims.d[1] = 3;
    CHECK(runtime->onShapeChange(rt, 4, nullptr, 1) != 0);

    std::unique_ptr<IPluginV3> copy(plugin->clone());
    CHECK(copy != nullptr);
    auto* copy_rt = static_cast<IPluginV3OneRuntime*>(copy->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    PluginFieldCollection const* ser = copy_rt->getFieldsToSerialize();
    // Every field enqueue needs is serialized: the divisor and the input count (4, from onShapeChange).
    CHECK(ser->nbFields == 2);
    int serialized = 0;
    for (int32_t i = 0; i < ser->nbFields; ++i) {
        PluginField const& f = ser->fields[i];
        if (std::strcmp(f.name, "flow_divisor") == 0) {
            serialized += f.type == PluginFieldType::kFLOAT32 && *static_cast<float const*>(f.data) == 4.0f;
        } else if (std::strcmp(f.name, "num_inputs") == 0) {
            serialized += f.type == PluginFieldType::kINT32 && *static_cast<int32_t const*>(f.data) == 4;
        }
    }
    CHECK(serialized == 2);
    std::unique_ptr<IPluginV3> again(creator->createPlugin("warp", ser, TensorRTPhase::kRUNTIME));
    CHECK(again != nullptr);
    if (again) {
        auto* p = static_cast<trtnet::plugin::InverseWarpPlugin*>(
            static_cast<IPluginV3OneCore*>(again->getCapabilityInterface(PluginCapabilityType::kCORE)));
        CHECK(p->flow_divisor() == 4.0f);
        // A deserialized plugin refuses a layer with another input count.
        auto* again_rt = static_cast<IPluginV3OneRuntime*>(again->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        CHECK(again_rt->onShapeChange(rt, 2, nullptr, 1) != 0);
    }
    int32_t three = 3, five = 5;
    PluginField declared[] = {{"num_inputs", &three, PluginFieldType::kINT32, 1}};
    PluginFieldCollection cd{1, declared};
    std::unique_ptr<IPluginV3> three_in(creator->createPlugin("warp", &cd, TensorRTPhase::kBUILD));
    CHECK(three_in != nullptr);
    if (three_in) {
        auto* b3 = static_cast<IPluginV3OneBuild*>(three_in->getCapabilityInterface(PluginCapabilityType::kBUILD));
        CHECK(b3->configurePlugin(nullptr, 4, nullptr, 1) != 0 && b3->configurePlugin(nullptr, 3, nullptr, 1) == 0);
    }
    PluginField too_many[] = {{"num_inputs", &five, PluginFieldType::kINT32, 1}};
    PluginFieldCollection c5{1, too_many};
    CHECK(creator->createPlugin("warp", &c5, TensorRTPhase::kBUILD) == nullptr);
    std::unique_ptr<IPluginV3> dflt(creator->createPlugin("warp", nullptr, TensorRTPhase::kBUILD));
    CHECK(dflt != nullptr);
    float zero = 0.0f;
    PluginField bad[] = {{"flow_divisor", &zero, PluginFieldType::kFLOAT32, 1}};
    PluginFieldCollection cb{1, bad};
    CHECK(creator->createPlugin("warp", &cb, TensorRTPhase::kBUILD) == nullptr);
}

// One line per field, "spec PLUGIN FIELD TYPE DEFAULT", from getFieldNames() (declared
// types) and the serialized fields of a plugin created without fields (defaults), for
// tests/test_plugins_lifecycle.py to compare with trtnet/plugins/specs.py.
static void print_spec() {
    int32_t n = 0;
    IPluginCreatorInterface* const* list = getCreators(n);
    for (int32_t i = 0; i < n; ++i) {
        auto* c = static_cast<IPluginCreatorV3One*>(list[i]);
        std::unique_ptr<IPluginV3> plugin(c->createPlugin("defaults", nullptr, TensorRTPhase::kBUILD));
        if (!plugin) continue;
        auto* rt = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        PluginFieldCollection const* declared = c->getFieldNames();
        PluginFieldCollection const* values = rt->getFieldsToSerialize();
        for (int32_t f = 0; f < declared->nbFields; ++f) {
            PluginField const& d = declared->fields[f];
            char const* type = d.type == PluginFieldType::kINT32 ? "int32" : d.type == PluginFieldType::kFLOAT32 ? "float32" : "?";
            std::string value = "?";
            for (int32_t v = 0; v < values->nbFields; ++v) {
                PluginField const& s = values->fields[v];
                if (std::strcmp(s.name, d.name) != 0 || s.type != d.type) continue;
                char buf[64];
                if (s.type == PluginFieldType::kINT32) std::snprintf(buf, sizeof buf, "%d", *static_cast<int32_t const*>(s.data));
                else std::snprintf(buf, sizeof buf, "%.9g", double(*static_cast<float const*>(s.data)));
                value = buf;
            }
            std::printf("spec %s %s %s %s\n", c->getPluginName(), d.name, type, value.c_str());
        }
    }
}

int main() {
    std::printf("TensorRT headers %d.%d\n", NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR);
    print_spec();
    test_registry_entry();
    test_fast_nms();
    test_inverse_warp();
    if (g_failures == 0) std::printf("lifecycle: all checks passed\n");
    return g_failures == 0 ? 0 : 1;
}
