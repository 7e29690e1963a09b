// enqueue() of both plugins, run against the CUDA kernels compiled for the CPU
// (tests/cuda_emu): the plugin turns TensorRT's tensor descriptors into the launcher's
// sizes, dtype, optional inputs and workspace correctly, and its outputs equal the CPU
// twin's bit for bit. "Device" pointers are host memory here; the stream is null.
// Built by tests/test_plugins_enqueue.py (plugin code against TensorRT headers, kernels
// through cuda_emu/cuda_runtime.h).
#include <NvInferRuntime.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "common/hd.h"
#include "fast_nms/fast_nms.h"
#include "fast_nms/fast_nms_plugin.h"
#include "inverse_warp/inverse_warp.h"
#include "inverse_warp/inverse_warp_plugin.h"

using namespace nvinfer1;
using trtnet::half_t;

extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

static int g_failures = 0;

static IPluginCreatorV3One* creator(char const* name) {
    int32_t n = 0;
    IPluginCreatorInterface* const* list = getCreators(n);
    for (int32_t i = 0; i < n; ++i) {
        auto* c = static_cast<IPluginCreatorV3One*>(list[i]);
        if (std::strcmp(c->getPluginName(), name) == 0) return c;
    }
    return nullptr;
}

static PluginTensorDesc desc(DataType t, std::vector<int64_t> const& dims) {
    PluginTensorDesc d{};
    d.type = t;
    d.format = TensorFormat::kLINEAR;
    d.dims.nbDims = int32_t(dims.size());
    for (size_t i = 0; i < dims.size(); ++i) d.dims.d[i] = dims[i];
    return d;
}

template <typename T>
static std::vector<T> random_values(size_t n, unsigned seed, float scale) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    std::vector<T> v(n);
    for (auto& x : v) x = trtnet::from_float<T>(normal(rng) * scale);
    return v;
}

// deserialized: the plugin is created from its serialized fields (num_inputs included) and
// enqueued without onShapeChange, as a runtime may; otherwise onShapeChange runs first.
template <typename T>
static void warp_case(int num_inputs, int scale_c, bool deserialized = false) {
    const DataType dt = sizeof(T) == 4 ? DataType::kFLOAT : DataType::kHALF;
    const int n = 2, c = 21, h = 7, w = 34;
    auto feature = random_values<T>(size_t(n) * c * h * w, 1, 1.0f);
    auto flow = random_values<T>(size_t(n) * 2 * h * w, 2, 3.0f);
    auto scale = random_values<T>(size_t(1) * scale_c * h * w, 3, 1.0f);
    auto bias = random_values<T>(size_t(n) * c * h * w, 4, 1.0f);
    float divisor = 4.0f;
    int32_t count = num_inputs;
    PluginField f[] = {{"flow_divisor", &divisor, PluginFieldType::kFLOAT32, 1},
                       {"num_inputs", &count, PluginFieldType::kINT32, 1}};
    PluginFieldCollection fc{deserialized ? 2 : 1, f};
    std::unique_ptr<IPluginV3> plugin(creator("InverseWarp")->createPlugin("w", &fc, TensorRTPhase::kRUNTIME));
    if (plugin == nullptr) {
        ++g_failures;
        std::printf("InverseWarp createPlugin failed (inputs=%d): MISMATCH\n", num_inputs);
        return;
    }
    auto* rt = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    PluginTensorDesc in[4] = {desc(dt, {n, c, h, w}), desc(dt, {n, 2, h, w}), desc(dt, {1, scale_c, h, w}),
                              desc(dt, {n, c, h, w})};
    PluginTensorDesc out[1] = {desc(dt, {n, c, h, w})};
    std::vector<T> got(feature.size()), want(feature.size());
    void const* inputs[4] = {feature.data(), flow.data(), scale.data(), bias.data()};
    void* outputs[1] = {got.data()};
    bool ok = (deserialized || rt->onShapeChange(in, num_inputs, out, 1) == 0) &&
              rt->enqueue(in, out, inputs, outputs, nullptr, nullptr) == 0;
    trtnet::warp::Shape s{n, c, h, w, 1, scale_c, n, c};
    trtnet::warp::inverse_warp_host(sizeof(T) == 4 ? trtnet::warp::DType::kFloat32 : trtnet::warp::DType::kFloat16, s,
                                    divisor, feature.data(), flow.data(), num_inputs > 2 ? scale.data() : nullptr,
                                    num_inputs > 3 ? bias.data() : nullptr, want.data());
    ok = ok && std::memcmp(got.data(), want.data(), got.size() * sizeof(T)) == 0;
    g_failures += ok ? 0 : 1;
    std::printf("InverseWarp enqueue %s inputs=%d scale channels=%d%s: %s\n", sizeof(T) == 4 ? "fp32" : "fp16",
                num_inputs, scale_c, deserialized ? " (deserialized, no onShapeChange)" : "", ok ? "identical" : "MISMATCH");
}

template <typename T>
static void nms_case(int n, int a, int c, int k) {
    const DataType dt = sizeof(T) == 4 ? DataType::kFLOAT : DataType::kHALF;
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> uni(0.0f, 1.0f);
    std::vector<T> boxes(size_t(n) * a * 4), scores(size_t(n) * a * c), coeffs(size_t(n) * a * k);
    for (size_t i = 0; i < boxes.size(); i += 4) {
        float x = uni(rng), y = uni(rng), s = 0.05f + 0.3f * uni(rng);
        boxes[i] = trtnet::from_float<T>(x);
        boxes[i + 1] = trtnet::from_float<T>(y);
        boxes[i + 2] = trtnet::from_float<T>(x + s);
        boxes[i + 3] = trtnet::from_float<T>(y + s);
    }
    for (auto& v : scores) v = trtnet::from_float<T>(uni(rng) * uni(rng));
    for (auto& v : coeffs) v = trtnet::from_float<T>(uni(rng) - 0.5f);
    int32_t top_k = 40, max_det = 30, bg = 0;
    float conf = 0.3f, nms = 0.45f;
    PluginField f[] = {{"top_k", &top_k, PluginFieldType::kINT32, 1}, {"conf_thresh", &conf, PluginFieldType::kFLOAT32, 1},
                       {"nms_thresh", &nms, PluginFieldType::kFLOAT32, 1}, {"max_det", &max_det, PluginFieldType::kINT32, 1},
                       {"background_class", &bg, PluginFieldType::kINT32, 1}};
    PluginFieldCollection fc{5, f};
    std::unique_ptr<IPluginV3> plugin(creator("FastNMS")->createPlugin("n", &fc, TensorRTPhase::kRUNTIME));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* rt = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    // Workspace sized for a larger profile maximum than the actual shapes, as TensorRT does.
    DynamicPluginTensorDesc dyn[3]{};
    dyn[0].desc = desc(dt, {n, a, 4});
    dyn[1].desc = desc(dt, {n, a, c});
    dyn[2].desc = desc(dt, {n, a, k});
    for (auto& d : dyn) {
        d.max = d.desc.dims;
        d.max.d[0] = n + 2;
        d.max.d[1] = a + 100;
    }
    std::vector<unsigned char> workspace(build->getWorkspaceSize(dyn, 3, nullptr, 5), 0xEE);
    PluginTensorDesc in[3] = {dyn[0].desc, dyn[1].desc, dyn[2].desc};
    PluginTensorDesc out[5] = {desc(DataType::kINT32, {n}), desc(dt, {n, max_det, 4}), desc(dt, {n, max_det}),
                               desc(DataType::kINT32, {n, max_det}), desc(dt, {n, max_det, k})};
    std::vector<int32_t> count(n, -5), classes(size_t(n) * max_det, -5), hcount(n), hclasses(size_t(n) * max_det);
    std::vector<T> ob(size_t(n) * max_det * 4), os(size_t(n) * max_det), oc(size_t(n) * max_det * k);
    std::vector<T> hb(ob.size()), hs(os.size()), hc(oc.size());
    void const* inputs[3] = {boxes.data(), scores.data(), coeffs.data()};
    void* outputs[5] = {count.data(), ob.data(), os.data(), classes.data(), oc.data()};
    bool ok = rt->onShapeChange(in, 3, out, 5) == 0 &&
              rt->enqueue(in, out, inputs, outputs, workspace.data(), nullptr) == 0;
    trtnet::nms::Settings s;
    s.top_k = top_k; s.max_det = max_det; s.background_class = bg; s.conf_thresh = conf; s.nms_thresh = nms;
    trtnet::nms::Tensors t{boxes.data(), scores.data(), coeffs.data(), hcount.data(), hb.data(), hs.data(),
                           hclasses.data(), hc.data()};
    trtnet::nms::fast_nms_host(sizeof(T) == 4 ? trtnet::nms::DType::kFloat32 : trtnet::nms::DType::kFloat16, n, a, c,
                               k, s, t);
    ok = ok && count == hcount && classes == hclasses && std::memcmp(ob.data(), hb.data(), ob.size() * sizeof(T)) == 0 &&
         std::memcmp(os.data(), hs.data(), os.size() * sizeof(T)) == 0 &&
         std::memcmp(oc.data(), hc.data(), oc.size() * sizeof(T)) == 0;
    g_failures += ok ? 0 : 1;
    std::printf("FastNMS enqueue %s n=%d a=%d c=%d k=%d (workspace %zu bytes, count0 %d): %s\n",
                sizeof(T) == 4 ? "fp32" : "fp16", n, a, c, k, workspace.size(), hcount[0], ok ? "identical" : "MISMATCH");
}

int main() {
    for (int inputs = 2; inputs <= 4; ++inputs) {
        warp_case<float>(inputs, 21);
        warp_case<half_t>(inputs, 1);
        warp_case<float>(inputs, 21, true);
    }
    nms_case<float>(2, 300, 6, 5);
    nms_case<half_t>(3, 129, 4, 0);
    std::printf(g_failures == 0 ? "enqueue: all identical to the CPU twins\n" : "enqueue: %d MISMATCHES\n", g_failures);
    return g_failures == 0 ? 0 : 1;
}
