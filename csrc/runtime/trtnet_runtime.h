// trtnet C++ runtime (skeleton): run a trtnet engine from C++ -- load the plugin library
// and a serialized engine, size buffers for a frame, enqueue on a stream, read the
// fixed-capacity detections. Mask assembly (sigmoid(protos @ coeffs), crop, resize) and the
// video keyframe state are not here yet; trtnet/masks.py and trtnet/runtime do them in Python.
//
// Tensor names are the ones of trtnet/names.py (tests/test_plugins_cpp_runtime.py checks
// that the constants below still match it).
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace trtnet {

namespace names {
constexpr char const* kInput = "frame";            // uint8 [1, H, W, 3] BGR
constexpr char const* kProto = "proto";            // [1, 138, 138, 32]
constexpr char const* kDetCount = "det/count";     // int32 [1]
constexpr char const* kDetBoxes = "det/boxes";     // [1, max_det, 4] x1, y1, x2, y2 relative
constexpr char const* kDetScores = "det/scores";   // [1, max_det]
constexpr char const* kDetClasses = "det/classes"; // int32 [1, max_det], 0-based foreground
constexpr char const* kDetCoeffs = "det/coeffs";   // [1, max_det, mask_dim]
}  // namespace names

struct Detection {
    float x1, y1, x2, y2;  // relative to the frame (0..1)
    float score;
    int32_t cls;           // 0-based foreground class
};

// One input or output of the engine, with its device buffer for the current shapes.
struct Tensor {
    std::string name;
    bool is_input = false;
    nvinfer1::DataType type = nvinfer1::DataType::kFLOAT;
    nvinfer1::Dims dims{};
    size_t bytes = 0;
    size_t capacity = 0;
    void* device = nullptr;
};

class Engine {
public:
    // Loads `plugin_library` (libtrtnet_plugins.so; "" = already loaded) into TensorRT's
    // registry, then deserializes `engine_path`. Throws std::runtime_error naming the problem.
    Engine(std::string const& engine_path, std::string const& plugin_library, nvinfer1::ILogger& logger);
    ~Engine();
    Engine(Engine const&) = delete;
    Engine& operator=(Engine const&) = delete;

    // Input frame size (uint8 BGR, H x W x 3); (re)allocates device buffers when they grow.
    void set_frame_shape(int height, int width);

    // Enqueues the engine on `stream` with the current buffers (asynchronous).
    void enqueue(cudaStream_t stream);

    // Convenience: copy a host BGR frame in, run, copy the detections out, synchronise.
    std::vector<Detection> detect(uint8_t const* bgr, int height, int width, cudaStream_t stream);

    std::vector<Tensor> const& tensors() const { return tensors_; }
    Tensor const& tensor(std::string const& name) const;

private:
    Tensor& find(std::string const& name);

    std::unique_ptr<nvinfer1::IRuntime> runtime_;
    std::unique_ptr<nvinfer1::ICudaEngine> engine_;
    std::unique_ptr<nvinfer1::IExecutionContext> context_;
    std::vector<Tensor> tensors_;
};

// Element size of a TensorRT data type in bytes (0 for sub-byte / unsupported types).
size_t element_size(nvinfer1::DataType type);

}  // namespace trtnet
