// The seam between the runtime's logic (scheduling, buffers, state handoff, graphs,
// postprocess) and TensorRT + CUDA. tensorrt_backend.cpp implements it with the real
// libraries; csrc/runtime/tests/fake_backend.h with host memory and a scripted engine, so
// every decision of the runtime is tested without a GPU. Nothing here includes a CUDA or
// TensorRT header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trtnet.h"

namespace trtnet {

using Stream = CUstream_st*;
using Shape = std::vector<int64_t>;

enum class DType { kFloat, kHalf, kInt8, kInt32, kInt64, kBool, kUInt8, kOther };
size_t dtype_size(DType type);  // 0 for kOther
char const* dtype_name(DType type);
std::string shape_str(Shape const& shape);
int64_t volume(Shape const& shape);  // -1 when a dimension is unknown

struct TensorDesc {
    std::string name;
    bool input = false;
    DType type = DType::kFloat;
    Shape declared;  // -1 for dynamic dimensions
};

struct Profile {  // optimization profile 0 of one input
    Shape min, opt, max;
};

// One deserialized engine with one execution context. Every method mirrors one TensorRT
// call (ICudaEngine / IExecutionContext); `false` means TensorRT refused it.
class EngineHandle {
public:
    virtual ~EngineHandle() = default;
    virtual std::vector<TensorDesc> tensors() const = 0;
    virtual Profile profile(std::string const& input) const = 0;                   // getProfileShape
    virtual bool set_input_shape(std::string const& name, Shape const& shape) = 0;  // setInputShape
    virtual Shape tensor_shape(std::string const& name) const = 0;                  // getTensorShape
    virtual bool set_address(std::string const& name, void* device) = 0;          // setTensorAddress
    virtual bool enqueue(Stream stream) = 0;                                        // enqueueV3
};

enum class Copy { kHostToDevice, kDeviceToHost, kDeviceToDevice };

// Binary masks of `count` detections of one frame (csrc/masks: sigmoid(protos @ coeffs^T),
// crop by box, bilinear resize to the frame, > 0.5), all pointers on the device. Fast NMS
// writes detections best first, so the kept ones are rows [0, count) of its outputs (the
// runtime gathers them into scratch rows otherwise).
struct MaskJob {
    void const* protos = nullptr;  // [proto_h, proto_w, mask_dim]
    void const* coeffs = nullptr;  // [count, mask_dim] contiguous
    void const* boxes = nullptr;   // [count, 4] x1, y1, x2, y2 relative, contiguous
    DType proto_type = DType::kFloat, det_type = DType::kFloat;  // det_type: coeffs and boxes (Fast NMS's one dtype)
    int proto_h = 0, proto_w = 0, mask_dim = 0;
    int count = 0;
    int frame_h = 0, frame_w = 0;
    bool crop = true;
    uint8_t* out = nullptr;  // [count, frame_h, frame_w] 0/1
};

class Backend {
public:
    virtual ~Backend() = default;

    // -- TensorRT ---------------------------------------------------------------------
    virtual int32_t library_version() = 0;         // getInferLibVersion(): major*10000 + minor*100 + patch
    virtual std::string compute_capability() = 0;  // of the current device, e.g. "8.7"
    // IPluginRegistry::getCreator(name, version, namespace) != nullptr: a creator is registered
    // in the process's registry (by any library, under any spelling of its path).
    virtual bool has_plugin_creator(char const* name, char const* version, char const* plugin_namespace) = 0;
    // IPluginRegistry::loadLibrary(path) != nullptr. TensorRT refuses a library when any of its
    // plugins is already registered, so the caller checks has_plugin_creator first (segmenter.cpp).
    virtual bool load_plugin_library(std::string const& path) = 0;
    // TensorRT's own plugin library (ModulatedDeformConv2d for YOLACT++): dlopen(`library`, e.g.
    // "libnvinfer_plugin.so.10") and call its
    //   bool initLibNvInferPlugins(void* logger, char const* libNamespace);
    // (NvInferPlugin.h, TensorRT 10.3 and 11.1 line 38: "Initialize and register all the existing
    // TensorRT plugins to the Plugin Registry") with namespace "". false, with `why`, when the
    // library cannot be opened, lacks the function or the function returns false. The caller
    // checks has_plugin_creator before and after (segmenter.cpp).
    virtual bool init_tensorrt_plugins(std::string const& library, std::string& why) = 0;
    // nullptr when TensorRT cannot deserialize the blob.
    virtual std::unique_ptr<EngineHandle> deserialize(std::vector<char> const& blob) = 0;
    virtual void warn(std::string const& message) = 0;

    // -- CUDA (errors throw Error(kCuda)) ----------------------------------------------
    virtual Stream create_stream() = 0;
    virtual void destroy_stream(Stream stream) = 0;
    virtual void* device_alloc(size_t bytes) = 0;
    virtual void device_free(void* ptr) = 0;
    virtual void* host_alloc(size_t bytes) = 0;  // pinned
    virtual void host_free(void* ptr) = 0;
    // `rows` rows of `width` bytes (cudaMemcpy2DAsync).
    virtual void copy_2d(void* dst, size_t dst_pitch, void const* src, size_t src_pitch, size_t width, size_t rows,
                         Copy kind, Stream stream) = 0;
    virtual void synchronize(Stream stream) = 0;
    // Later work on `stream` waits for the work `event` captured (cudaStreamWaitEvent; a device-side wait).
    virtual void wait_event(CUevent_st* event, Stream stream) = 0;
    // The host waits for the work `event` captured (cudaEventSynchronize).
    virtual void synchronize_event(CUevent_st* event) = 0;
    virtual void* create_event() = 0;  // with timing
    virtual void destroy_event(void* event) = 0;
    virtual void record(void* event, Stream stream) = 0;
    virtual float elapsed_ms(void* start, void* end) = 0;  // waits for `end`

    // CUDA graphs: false / nullptr when capture is not possible (the caller falls back).
    virtual bool begin_capture(Stream stream) = 0;
    virtual void* end_capture(Stream stream) = 0;  // the instantiated graph, or nullptr
    virtual void launch_graph(void* graph, Stream stream) = 0;
    virtual void destroy_graph(void* graph) = 0;

    // NVTX ranges in domain "trtnet" (no-ops without a profiler attached).
    virtual void range_push(char const* name) = 0;
    virtual void range_pop() = 0;

    virtual void assemble_masks(MaskJob const& job, Stream stream) = 0;
};

// The real backend: TensorRT's runtime library and the CUDA runtime (tensorrt_backend.cpp).
std::shared_ptr<Backend> make_tensorrt_backend();

}  // namespace trtnet
