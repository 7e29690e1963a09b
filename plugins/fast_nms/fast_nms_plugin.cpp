// FastNMS IPluginV3 + creator. The math lives in fast_nms.cuh; enqueue launches
// fast_nms_launch on TensorRT's stream with the workspace TensorRT allocated.
#include "fast_nms_plugin.h"

#include <cmath>
#include <cstring>
#include <new>
#include <string>

namespace trtnet {
namespace plugin {

using namespace nvinfer1;

namespace {

constexpr int kBoxes = 0, kScores = 1, kCoeffs = 2;
constexpr int kOutCount = 0, kOutBoxes = 1, kOutScores = 2, kOutClasses = 3, kOutCoeffs = 4;

// Settings-only validation at creation: sizes are unknown yet (the score column count is
// taken as just large enough for background_class); onShapeChange checks the real sizes.
char const* check_settings(nms::Settings const& s) {
    return nms::fast_nms_check(0, 0, s.background_class + 1, 0, s);
}

}  // namespace

IPluginCapability* FastNMSPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept {
    switch (type) {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* FastNMSPlugin::clone() noexcept { return new (std::nothrow) FastNMSPlugin(settings_); }

int32_t FastNMSPlugin::configurePlugin(DynamicPluginTensorDesc const*, int32_t nbInputs, DynamicPluginTensorDesc const*,
                                       int32_t nbOutputs) noexcept {
    return (nbInputs == 3 && nbOutputs == 5) ? 0 : -1;
}

int32_t FastNMSPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                                          int32_t nbInputs) const noexcept {
    if (nbInputs != 3 || nbOutputs != 5) return -1;
    outputTypes[kOutCount] = DataType::kINT32;
    outputTypes[kOutBoxes] = inputTypes[kBoxes];
    outputTypes[kOutScores] = inputTypes[kBoxes];
    outputTypes[kOutClasses] = DataType::kINT32;
    outputTypes[kOutCoeffs] = inputTypes[kBoxes];
    return 0;
}

int32_t FastNMSPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*, int32_t,
                                       DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept {
    if (nbInputs != 3 || nbOutputs != 5) {
        log_error("FastNMS takes 3 inputs (boxes, scores, coeffs) and gives 5 outputs");
        return -1;
    }
    for (int i = 0; i < 3; ++i) {
        if (inputs[i].nbDims != 3) {
            log_error("FastNMS: boxes, scores and coeffs must be 3-D [N, A, *]");
            return -1;
        }
    }
    if (inputs[kBoxes].d[2]->isConstant() && inputs[kBoxes].d[2]->getConstantValue() != 4) {
        log_error("FastNMS: boxes must be [N, A, 4]");
        return -1;
    }
    IDimensionExpr const* n = inputs[kBoxes].d[0];
    IDimensionExpr const* max_det = exprBuilder.constant(settings_.max_det);
    IDimensionExpr const* four = exprBuilder.constant(4);
    if (max_det == nullptr || four == nullptr) return -1;
    outputs[kOutCount].nbDims = 1;
    outputs[kOutCount].d[0] = n;
    outputs[kOutBoxes].nbDims = 3;
    outputs[kOutBoxes].d[0] = n;
    outputs[kOutBoxes].d[1] = max_det;
    outputs[kOutBoxes].d[2] = four;
    outputs[kOutScores].nbDims = 2;
    outputs[kOutScores].d[0] = n;
    outputs[kOutScores].d[1] = max_det;
    outputs[kOutClasses].nbDims = 2;
    outputs[kOutClasses].d[0] = n;
    outputs[kOutClasses].d[1] = max_det;
    outputs[kOutCoeffs].nbDims = 3;
    outputs[kOutCoeffs].d[0] = n;
    outputs[kOutCoeffs].d[1] = max_det;
    outputs[kOutCoeffs].d[2] = inputs[kCoeffs].d[2];
    return 0;
}

bool FastNMSPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                              int32_t nbOutputs) noexcept {
    if (nbInputs != 3 || nbOutputs != 5 || pos < 0 || pos >= 8) return false;
    PluginTensorDesc const& d = inOut[pos].desc;
    if (d.format != TensorFormat::kLINEAR) return false;
    int const out = pos - nbInputs;
    if (out == kOutCount || out == kOutClasses) return d.type == DataType::kINT32;
    if (pos == 0) return is_float_type(d.type);
    return d.type == inOut[0].desc.type;
}

size_t FastNMSPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                                       DynamicPluginTensorDesc const*, int32_t) const noexcept {
    if (nbInputs != 3) return 0;
    Dims const& s = inputs[kScores].max;
    if (s.nbDims != 3) return 0;
    return nms::fast_nms_workspace_size(int(s.d[0]), int(s.d[1]), int(s.d[2]), settings_);
}

int32_t FastNMSPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const*,
                                     int32_t nbOutputs) noexcept {
    if (nbInputs != 3 || nbOutputs != 5) return -1;
    Dims const& b = in[kBoxes].dims;
    Dims const& s = in[kScores].dims;
    Dims const& k = in[kCoeffs].dims;
    if (b.d[2] != 4 || s.d[0] != b.d[0] || s.d[1] != b.d[1] || k.d[0] != b.d[0] || k.d[1] != b.d[1]) {
        log_error("FastNMS: inputs must be boxes [N,A,4], scores [N,A,C], coeffs [N,A,K] with equal N, A");
        return -1;
    }
    char const* problem = nms::fast_nms_check(int(b.d[0]), int(b.d[1]), int(s.d[2]), int(k.d[2]), settings_);
    if (*problem != '\0') {
        log_error(std::string("FastNMS: ") + problem);
        return -1;
    }
    return 0;
}

int32_t FastNMSPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*, void const* const* inputs,
                               void* const* outputs, void* workspace, cudaStream_t stream) noexcept {
    Dims const& s = inputDesc[kScores].dims;
    int const k = int(inputDesc[kCoeffs].dims.d[2]);
    nms::Tensors t{inputs[kBoxes], inputs[kScores], inputs[kCoeffs],
                   static_cast<int32_t*>(outputs[kOutCount]), outputs[kOutBoxes], outputs[kOutScores],
                   static_cast<int32_t*>(outputs[kOutClasses]), outputs[kOutCoeffs]};
    auto dtype = inputDesc[kBoxes].type == DataType::kHALF ? nms::DType::kFloat16 : nms::DType::kFloat32;
    return nms::fast_nms_launch(dtype, int(s.d[0]), int(s.d[1]), int(s.d[2]), k, settings_, t, workspace, stream) == 0
               ? 0
               : -1;
}

IPluginV3* FastNMSPlugin::attachToContext(IPluginResourceContext*) noexcept { return clone(); }

PluginFieldCollection const* FastNMSPlugin::getFieldsToSerialize() noexcept {
    fields_.clear();
    fields_.add_int("top_k", settings_.top_k);
    fields_.add_int("max_det", settings_.max_det);
    fields_.add_int("background_class", settings_.background_class);
    fields_.add_float("conf_thresh", settings_.conf_thresh);
    fields_.add_float("nms_thresh", settings_.nms_thresh);
    return fields_.collection();
}

FastNMSCreator::FastNMSCreator()
    : CreatorBase({{"top_k", PluginFieldType::kINT32},
                   {"conf_thresh", PluginFieldType::kFLOAT32},
                   {"nms_thresh", PluginFieldType::kFLOAT32},
                   {"max_det", PluginFieldType::kINT32},
                   {"background_class", PluginFieldType::kINT32}}) {}

IPluginV3* FastNMSCreator::createPlugin(char const*, PluginFieldCollection const* fc, TensorRTPhase) noexcept {
    nms::Settings s;  // defaults = specs.FAST_NMS defaults
    if (fc != nullptr) {
        for (int32_t i = 0; i < fc->nbFields; ++i) {
            PluginField const& f = fc->fields[i];
            if (f.name == nullptr) continue;
            bool ok = true;
            if (std::strcmp(f.name, "top_k") == 0) ok = read_scalar(f, s.top_k);
            else if (std::strcmp(f.name, "conf_thresh") == 0) ok = read_scalar(f, s.conf_thresh);
            else if (std::strcmp(f.name, "nms_thresh") == 0) ok = read_scalar(f, s.nms_thresh);
            else if (std::strcmp(f.name, "max_det") == 0) ok = read_scalar(f, s.max_det);
            else if (std::strcmp(f.name, "background_class") == 0) ok = read_scalar(f, s.background_class);
            else {
                log_error(std::string("FastNMS: unknown field '") + f.name +
                          "' (fields: top_k, conf_thresh, nms_thresh, max_det, background_class)");
                return nullptr;
            }
            if (!ok) return nullptr;
        }
    }
    char const* problem = check_settings(s);
    if (*problem != '\0') {
        log_error(std::string("FastNMS: ") + problem);
        return nullptr;
    }
    return new (std::nothrow) FastNMSPlugin(s);
}

}  // namespace plugin
}  // namespace trtnet
