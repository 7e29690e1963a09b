// InverseWarp as a TensorRT IPluginV3 (namespace "trtnet", version "1").
//
// Inputs: feature [N,C,H,W], flow [N,2,H,W], optional scale and bias [N|1, C|1, H, W]
// (2, 3 or 4 inputs: a third input is the scale). Output: warped [N,C,H,W]. FP32 or FP16
// (all tensors one type), linear layout, dynamic shapes. Fields: flow_divisor (float32),
// num_inputs (int32: 2..4, or 0 = the layer's; serialized, so enqueue never depends on
// configurePlugin / onShapeChange having run).
#pragma once

#include <NvInferRuntime.h>

#include <string>

#include "../common/plugin_utils.h"

namespace trtnet {
namespace plugin {

class InverseWarpPlugin : public nvinfer1::IPluginV3,
                          public nvinfer1::IPluginV3OneCore,
                          public nvinfer1::IPluginV3OneBuild,
                          public nvinfer1::IPluginV3OneRuntime {
public:
    static constexpr char const* kName = "InverseWarp";

    // num_inputs: 2..4 as declared by the creator's field (0 = taken from the layer by
    // configurePlugin); serialized, so a deserialized plugin's enqueue knows it.
    explicit InverseWarpPlugin(float flow_divisor, int32_t num_inputs = 0)
        : flow_divisor_(flow_divisor), declared_inputs_(num_inputs), num_inputs_(num_inputs > 0 ? num_inputs : -1) {}
    ~InverseWarpPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return kName; }
    char const* getPluginVersion() const noexcept override { return kVersion; }
    char const* getPluginNamespace() const noexcept override { return kNamespace; }

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
                               nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
                            int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override { return 1; }
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const*, int32_t, nvinfer1::DynamicPluginTensorDesc const*,
                            int32_t) const noexcept override { return 0; }

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
                          nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

    float flow_divisor() const { return flow_divisor_; }

private:
    bool accepts_input_count(int32_t nbInputs) const noexcept;  // 2..4 and the num_inputs field's, logged

    float flow_divisor_;
    int32_t declared_inputs_ = 0;  // the num_inputs field: 2..4, or 0 = whatever the layer has
    int32_t num_inputs_ = -1;      // 2..4: the field's, else recorded by configurePlugin / onShapeChange
    FieldWriter fields_;
};

class InverseWarpCreator : public CreatorBase<InverseWarpPlugin> {
public:
    InverseWarpCreator();
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase phase) noexcept override;
};

}  // namespace plugin
}  // namespace trtnet
