// trtnet C++ runtime (skeleton), see trtnet_runtime.h. Uses only API present in TensorRT
// 10.3 and 11 (enqueueV3, named I/O tensors, IPluginRegistry::loadLibrary).
#include "trtnet_runtime.h"

#include <fstream>
#include <iterator>
#include <stdexcept>

#include "common/hd.h"

namespace trtnet {

namespace {

void check_cuda(cudaError_t status, char const* what) {
    if (status != cudaSuccess) {
        throw std::runtime_error(std::string("trtnet runtime: ") + what + ": " + cudaGetErrorString(status));
    }
}

std::vector<char> read_file(std::string const& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) throw std::runtime_error("trtnet runtime: cannot open engine file " + path);
    return std::vector<char>(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

size_t volume(nvinfer1::Dims const& d) {
    size_t v = 1;
    for (int32_t i = 0; i < d.nbDims; ++i) {
        if (d.d[i] < 0) return 0;
        v *= size_t(d.d[i]);
    }
    return v;
}

float read_float(Tensor const& t, std::vector<uint8_t> const& host, size_t i) {
    if (t.type == nvinfer1::DataType::kHALF) {
        half_t h;
        std::memcpy(&h, host.data() + i * 2, 2);
        return half_to_float(h);
    }
    float f;
    std::memcpy(&f, host.data() + i * 4, 4);
    return f;
}

}  // namespace

size_t element_size(nvinfer1::DataType type) {
    switch (type) {
    case nvinfer1::DataType::kFLOAT: return 4;
    case nvinfer1::DataType::kHALF: return 2;
    case nvinfer1::DataType::kINT32: return 4;
    case nvinfer1::DataType::kINT8: return 1;
    case nvinfer1::DataType::kUINT8: return 1;
    case nvinfer1::DataType::kBOOL: return 1;
    case nvinfer1::DataType::kINT64: return 8;
    case nvinfer1::DataType::kBF16: return 2;
    default: return 0;
    }
}

Engine::Engine(std::string const& engine_path, std::string const& plugin_library, nvinfer1::ILogger& logger) {
    runtime_.reset(nvinfer1::createInferRuntime(logger));
    if (!runtime_) throw std::runtime_error("trtnet runtime: createInferRuntime failed");
    if (!plugin_library.empty() && runtime_->getPluginRegistry().loadLibrary(plugin_library.c_str()) == nullptr) {
        throw std::runtime_error("trtnet runtime: could not load plugin library " + plugin_library +
                                 " (missing, built for another TensorRT, or its creators are already registered)");
    }
    std::vector<char> blob = read_file(engine_path);
    engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
    if (!engine_) {
        throw std::runtime_error("trtnet runtime: could not deserialize " + engine_path +
                                 " (built by another TensorRT version or GPU, or plugins not loaded)");
    }
    context_.reset(engine_->createExecutionContext());
    if (!context_) throw std::runtime_error("trtnet runtime: createExecutionContext failed");
    for (int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
        Tensor t;
        t.name = engine_->getIOTensorName(i);
        t.is_input = engine_->getTensorIOMode(t.name.c_str()) == nvinfer1::TensorIOMode::kINPUT;
        t.type = engine_->getTensorDataType(t.name.c_str());
        tensors_.push_back(t);
    }
    find(names::kInput);  // an engine without the frame input is not a trtnet engine
}

Engine::~Engine() {
    for (Tensor& t : tensors_) {
        if (t.device != nullptr) cudaFree(t.device);
    }
}

Tensor& Engine::find(std::string const& name) {
    for (Tensor& t : tensors_) {
        if (t.name == name) return t;
    }
    throw std::runtime_error("trtnet runtime: the engine has no tensor named '" + name + "'");
}

Tensor const& Engine::tensor(std::string const& name) const { return const_cast<Engine*>(this)->find(name); }

void Engine::set_frame_shape(int height, int width) {
    nvinfer1::Dims frame{};
    frame.nbDims = 4;
    frame.d[0] = 1;
    frame.d[1] = height;
    frame.d[2] = width;
    frame.d[3] = 3;
    if (!context_->setInputShape(names::kInput, frame)) {
        throw std::runtime_error("trtnet runtime: frame shape " + std::to_string(height) + "x" + std::to_string(width) +
                                 " is outside the engine's optimization profile");
    }
    for (Tensor& t : tensors_) {
        t.dims = context_->getTensorShape(t.name.c_str());
        t.bytes = volume(t.dims) * element_size(t.type);
        if (t.bytes > t.capacity) {
            if (t.device != nullptr) check_cuda(cudaFree(t.device), "cudaFree");
            t.device = nullptr;
            check_cuda(cudaMalloc(&t.device, t.bytes), ("cudaMalloc for " + t.name).c_str());
            t.capacity = t.bytes;
        }
        if (!context_->setTensorAddress(t.name.c_str(), t.device)) {
            throw std::runtime_error("trtnet runtime: setTensorAddress failed for " + t.name);
        }
    }
}

void Engine::enqueue(cudaStream_t stream) {
    if (!context_->enqueueV3(stream)) throw std::runtime_error("trtnet runtime: enqueueV3 failed");
}

std::vector<Detection> Engine::detect(uint8_t const* bgr, int height, int width, cudaStream_t stream) {
    Tensor& in = find(names::kInput);
    if (in.dims.nbDims != 4 || in.dims.d[1] != height || in.dims.d[2] != width) set_frame_shape(height, width);
    check_cuda(cudaMemcpyAsync(in.device, bgr, size_t(height) * width * 3, cudaMemcpyHostToDevice, stream), "frame copy");
    enqueue(stream);
    Tensor& count = find(names::kDetCount);
    Tensor& boxes = find(names::kDetBoxes);
    Tensor& scores = find(names::kDetScores);
    Tensor& classes = find(names::kDetClasses);
    std::vector<uint8_t> h_count(count.bytes), h_boxes(boxes.bytes), h_scores(scores.bytes), h_classes(classes.bytes);
    for (auto [dst, t] : {std::pair<std::vector<uint8_t>*, Tensor*>{&h_count, &count}, {&h_boxes, &boxes},
                          {&h_scores, &scores}, {&h_classes, &classes}}) {
        check_cuda(cudaMemcpyAsync(dst->data(), t->device, t->bytes, cudaMemcpyDeviceToHost, stream), "output copy");
    }
    check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    int32_t n = 0;
    std::memcpy(&n, h_count.data(), sizeof n);
    std::vector<Detection> out;
    for (int32_t d = 0; d < n; ++d) {
        Detection det{};
        det.x1 = read_float(boxes, h_boxes, size_t(d) * 4 + 0);
        det.y1 = read_float(boxes, h_boxes, size_t(d) * 4 + 1);
        det.x2 = read_float(boxes, h_boxes, size_t(d) * 4 + 2);
        det.y2 = read_float(boxes, h_boxes, size_t(d) * 4 + 3);
        det.score = read_float(scores, h_scores, size_t(d));
        std::memcpy(&det.cls, h_classes.data() + size_t(d) * 4, 4);
        out.push_back(det);
    }
    return out;
}

}  // namespace trtnet
