// InverseWarp IPluginV3 + creator. The math lives in inverse_warp.cuh; enqueue launches
// inverse_warp_launch on TensorRT's stream.
#include "inverse_warp_plugin.h"

#include <cmath>
#include <new>
#include <string>

#include "inverse_warp.h"

namespace trtnet {
namespace plugin {

using namespace nvinfer1;

namespace {

constexpr int kFeature = 0, kFlow = 1, kScale = 2, kBias = 3;

bool valid_input_count(int32_t n) { return n >= 2 && n <= 4; }  // feature, flow[, scale[, bias]]

bool valid_divisor(float d) { return std::isfinite(d) && d != 0.0f; }

}  // namespace

IPluginCapability* InverseWarpPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept {
    switch (type) {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* InverseWarpPlugin::clone() noexcept {
    auto* copy = new (std::nothrow) InverseWarpPlugin(flow_divisor_, declared_inputs_);
    if (copy != nullptr) copy->num_inputs_ = num_inputs_;
    return copy;
}

int32_t InverseWarpPlugin::configurePlugin(DynamicPluginTensorDesc const*, int32_t nbInputs,
                                           DynamicPluginTensorDesc const*, int32_t nbOutputs) noexcept {
    if (!accepts_input_count(nbInputs) || nbOutputs != 1) return -1;
    num_inputs_ = nbInputs;
    return 0;
}

bool InverseWarpPlugin::accepts_input_count(int32_t nbInputs) const noexcept {
    if (!valid_input_count(nbInputs)) {
        log_error("InverseWarp takes 2 to 4 inputs (feature, flow[, scale[, bias]])");
        return false;
    }
    if (declared_inputs_ > 0 && nbInputs != declared_inputs_) {
        log_error("InverseWarp: the layer has " + std::to_string(nbInputs) + " inputs, the num_inputs field says " +
                  std::to_string(declared_inputs_));
        return false;
    }
    return true;
}

int32_t InverseWarpPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                                              int32_t nbInputs) const noexcept {
    if (nbOutputs != 1 || !valid_input_count(nbInputs)) return -1;
    outputTypes[0] = inputTypes[kFeature];
    return 0;
}

int32_t InverseWarpPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*, int32_t,
                                           DimsExprs* outputs, int32_t nbOutputs, IExprBuilder&) noexcept {
    if (nbOutputs != 1 || !accepts_input_count(nbInputs)) {
        log_error("InverseWarp takes 2 to 4 inputs (feature, flow[, scale[, bias]]) and gives 1 output");
        return -1;
    }
    for (int i = 0; i < nbInputs; ++i) {
        if (inputs[i].nbDims != 4) {
            log_error("InverseWarp: every input must be 4-D NCHW");
            return -1;
        }
    }
    DimsExprs const& flow = inputs[kFlow];
    if (flow.d[1]->isConstant() && flow.d[1]->getConstantValue() != 2) {
        log_error("InverseWarp: flow must have 2 channels (x, y)");
        return -1;
    }
    outputs[0] = inputs[kFeature];
    return 0;
}

bool InverseWarpPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                  int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (pos < 0 || pos >= nbInputs + nbOutputs) return false;
    PluginTensorDesc const& d = inOut[pos].desc;
    if (d.format != TensorFormat::kLINEAR || !is_float_type(d.type)) return false;
    return pos == 0 || d.type == inOut[0].desc.type;
}

int32_t InverseWarpPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const*,
                                         int32_t nbOutputs) noexcept {
    if (!accepts_input_count(nbInputs) || nbOutputs != 1) return -1;
    num_inputs_ = nbInputs;
    Dims const& f = in[kFeature].dims;
    warp::Shape s{int(f.d[0]), int(f.d[1]), int(f.d[2]), int(f.d[3]), 1, 1, 1, 1};
    if (nbInputs > kScale) { s.scale_n = int(in[kScale].dims.d[0]); s.scale_c = int(in[kScale].dims.d[1]); }
    if (nbInputs > kBias) { s.bias_n = int(in[kBias].dims.d[0]); s.bias_c = int(in[kBias].dims.d[1]); }
    char const* problem = warp::inverse_warp_check(s, flow_divisor_);
    if (*problem != '\0') {
        log_error(std::string("InverseWarp: ") + problem);
        return -1;
    }
    return 0;
}

int32_t InverseWarpPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*,
                                   void const* const* inputs, void* const* outputs, void*,
                                   cudaStream_t stream) noexcept {
    Dims const& f = inputDesc[kFeature].dims;
    warp::Shape s{int(f.d[0]), int(f.d[1]), int(f.d[2]), int(f.d[3]), 1, 1, 1, 1};
    // enqueue is not told the input count: it comes from the serialized num_inputs field, or
    // configurePlugin / onShapeChange recorded it.
    if (!valid_input_count(num_inputs_)) {
        log_error("InverseWarp: enqueue with the input count unknown (no num_inputs field, no onShapeChange)");
        return -1;
    }
    void const* scale = nullptr;
    void const* bias = nullptr;
    if (num_inputs_ > kScale) {
        scale = inputs[kScale];
        s.scale_n = int(inputDesc[kScale].dims.d[0]);
        s.scale_c = int(inputDesc[kScale].dims.d[1]);
    }
    if (num_inputs_ > kBias) {
        bias = inputs[kBias];
        s.bias_n = int(inputDesc[kBias].dims.d[0]);
        s.bias_c = int(inputDesc[kBias].dims.d[1]);
    }
    auto dtype = inputDesc[kFeature].type == DataType::kHALF ? warp::DType::kFloat16 : warp::DType::kFloat32;
    return warp::inverse_warp_launch(dtype, s, flow_divisor_, inputs[kFeature], inputs[kFlow], scale, bias,
                                     outputs[0], stream) == 0 ? 0 : -1;
}

IPluginV3* InverseWarpPlugin::attachToContext(IPluginResourceContext*) noexcept { return clone(); }

PluginFieldCollection const* InverseWarpPlugin::getFieldsToSerialize() noexcept {
    fields_.clear();
    fields_.add_float("flow_divisor", flow_divisor_);
    fields_.add_int("num_inputs", valid_input_count(num_inputs_) ? num_inputs_ : declared_inputs_);
    return fields_.collection();
}

InverseWarpCreator::InverseWarpCreator()
    : CreatorBase({{"flow_divisor", PluginFieldType::kFLOAT32}, {"num_inputs", PluginFieldType::kINT32}}) {}

IPluginV3* InverseWarpCreator::createPlugin(char const*, PluginFieldCollection const* fc, TensorRTPhase) noexcept {
    float divisor = 8.0f;
    int32_t num_inputs = 0;
    if (fc != nullptr) {
        for (int32_t i = 0; i < fc->nbFields; ++i) {
            PluginField const& f = fc->fields[i];
            if (f.name == nullptr) continue;
            if (std::strcmp(f.name, "flow_divisor") == 0) {
                if (!read_scalar(f, divisor)) return nullptr;
            } else if (std::strcmp(f.name, "num_inputs") == 0) {
                if (!read_scalar(f, num_inputs)) return nullptr;
            } else {
                log_error(std::string("InverseWarp: unknown field '") + f.name + "' (fields: flow_divisor, num_inputs)");
                return nullptr;
            }
        }
    }
    if (!valid_divisor(divisor)) {
        log_error("InverseWarp: flow_divisor must be finite and non-zero");
        return nullptr;
    }
    if (num_inputs != 0 && !valid_input_count(num_inputs)) {
        log_error("InverseWarp: num_inputs must be 2, 3 or 4 (or 0: from the layer)");
        return nullptr;
    }
    return new (std::nothrow) InverseWarpPlugin(divisor, num_inputs);
}

}  // namespace plugin
}  // namespace trtnet
