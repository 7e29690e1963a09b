// The real Backend: TensorRT's runtime (named I/O tensors, enqueueV3, IPluginRegistry::
// loadLibrary: API present in 10.3 and 11.x), the CUDA runtime (streams, pinned memory,
// graphs: CUDA 12+), NVTX v3 (header-only, from the CUDA toolkit) and the mask kernels of
// csrc/masks. The only file of the runtime that includes a TensorRT or CUDA header.
// libnvinfer_plugin (TensorRT's own plugins: ModulatedDeformConv2d for YOLACT++) is not linked:
// it is dlopen'ed when an engine needs it (init_tensorrt_plugins), so other engines run without it.
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <nvtx3/nvToolsExt.h>

#include <cstdio>
#include <type_traits>

// bool initLibNvInferPlugins(void* logger, char const* libNamespace) (NvInferPlugin.h, TensorRT 10.3
// line 38, 11.1 line 38). Distributions ship NvInferPlugin.h apart from NvInfer.h (libnvinfer-plugin-dev):
// where it is installed, the declaration's own type is checked against this one.
using InitLibNvInferPlugins = bool (*)(void* logger, char const* libNamespace);
#if __has_include(<NvInferPlugin.h>)
#include <NvInferPlugin.h>
static_assert(std::is_same_v<decltype(&initLibNvInferPlugins), InitLibNvInferPlugins>,
              "initLibNvInferPlugins changed its signature (NvInferPlugin.h)");
#endif

#include "backend.h"
#include "mask_assembly.h"

namespace trtnet {

namespace {

void check(cudaError_t status, char const* what) {
    if (status != cudaSuccess) {
        throw Error(ErrorCode::kCuda, std::string(what) + " failed: " + cudaGetErrorName(status) + " (" +
                                          cudaGetErrorString(status) + ")");
    }
}

class Logger : public nvinfer1::ILogger {
public:
    void log(Severity severity, char const* msg) noexcept override {
        if (severity <= Severity::kWARNING) std::fprintf(stderr, "[TensorRT] %s\n", msg);
    }
};

DType to_dtype(nvinfer1::DataType type) {
    switch (type) {
    case nvinfer1::DataType::kFLOAT: return DType::kFloat;
    case nvinfer1::DataType::kHALF: return DType::kHalf;
    case nvinfer1::DataType::kINT8: return DType::kInt8;
    case nvinfer1::DataType::kINT32: return DType::kInt32;
    case nvinfer1::DataType::kINT64: return DType::kInt64;
    case nvinfer1::DataType::kBOOL: return DType::kBool;
    case nvinfer1::DataType::kUINT8: return DType::kUInt8;
    default: return DType::kOther;
    }
}

Shape to_shape(nvinfer1::Dims const& dims) {
    if (dims.nbDims < 0) return {};
    return Shape(dims.d, dims.d + dims.nbDims);
}

masks::DType to_mask_dtype(DType type, char const* what) {
    if (type == DType::kFloat) return masks::DType::kFloat32;
    if (type == DType::kHalf) return masks::DType::kFloat16;
    throw Error(ErrorCode::kWrongRole, std::string(what) + " is " + dtype_name(type) +
                                           "; the mask assembly takes float32 or float16");
}

class TensorRTEngine : public EngineHandle {
public:
    TensorRTEngine(std::shared_ptr<nvinfer1::IRuntime> runtime, nvinfer1::ICudaEngine* engine)
        : runtime_(std::move(runtime)), engine_(engine) {
        context_.reset(engine_->createExecutionContext());
        if (!context_) {
            throw Error(ErrorCode::kCuda, "TensorRT could not create an execution context (out of device memory?)");
        }
    }
    std::vector<TensorDesc> tensors() const override {
        std::vector<TensorDesc> out;
        for (int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
            char const* name = engine_->getIOTensorName(i);
            out.push_back(TensorDesc{name, engine_->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT,
                                     to_dtype(engine_->getTensorDataType(name)), to_shape(engine_->getTensorShape(name))});
        }
        return out;
    }
    Profile profile(std::string const& input) const override {
        using nvinfer1::OptProfileSelector;
        char const* n = input.c_str();
        return Profile{to_shape(engine_->getProfileShape(n, 0, OptProfileSelector::kMIN)),
                       to_shape(engine_->getProfileShape(n, 0, OptProfileSelector::kOPT)),
                       to_shape(engine_->getProfileShape(n, 0, OptProfileSelector::kMAX))};
    }
    bool set_input_shape(std::string const& name, Shape const& shape) override {
        nvinfer1::Dims dims{};
        if (shape.size() > size_t(nvinfer1::Dims::MAX_DIMS)) return false;
        dims.nbDims = int32_t(shape.size());
        for (size_t i = 0; i < shape.size(); ++i) dims.d[i] = shape[i];
        return context_->setInputShape(name.c_str(), dims);
    }
    Shape tensor_shape(std::string const& name) const override { return to_shape(context_->getTensorShape(name.c_str())); }
    bool set_address(std::string const& name, void* device) override {
        return context_->setTensorAddress(name.c_str(), device);
    }
    bool enqueue(Stream stream) override { return context_->enqueueV3(stream); }

private:
    std::shared_ptr<nvinfer1::IRuntime> runtime_;  // must outlive the engine
    std::unique_ptr<nvinfer1::ICudaEngine> engine_;
    std::unique_ptr<nvinfer1::IExecutionContext> context_;
};

class TensorRTBackend : public Backend {
public:
    TensorRTBackend() {
        int32_t lib = getInferLibVersion();
        if (lib / 10000 != NV_TENSORRT_MAJOR) {
            throw Error(ErrorCode::kVersion, "this program was compiled with TensorRT " +
                                                 std::to_string(NV_TENSORRT_MAJOR) + ".x headers but loaded libnvinfer " +
                                                 std::to_string(lib / 10000) + "." + std::to_string(lib / 100 % 100) +
                                                 ": rebuild it against the installed TensorRT");
        }
        runtime_.reset(nvinfer1::createInferRuntime(logger_));
        if (!runtime_) throw Error(ErrorCode::kTensorRT, "TensorRT could not create a runtime (is the CUDA driver working?)");
        domain_ = nvtxDomainCreateA(nvtx::kDomain);
    }
    ~TensorRTBackend() override {
        if (workspace_ != nullptr) cudaFree(workspace_);
        nvtxDomainDestroy(domain_);
    }

    int32_t library_version() override { return getInferLibVersion(); }

    std::string compute_capability() override {
        int device = 0, major = 0, minor = 0;
        cudaError_t status = cudaGetDevice(&device);
        if (status != cudaSuccess) {
            throw Error(ErrorCode::kDevice, std::string("no usable CUDA GPU: ") + cudaGetErrorString(status));
        }
        check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute");
        check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device), "cudaDeviceGetAttribute");
        return std::to_string(major) + "." + std::to_string(minor);
    }

    // The process's one registry (IRuntime::getPluginRegistry). segmenter.cpp checks the
    // creators first: loadLibrary "will fail and return nullptr if any of the plugins are
    // already registered" (NvInferRuntimeCommon.h, TensorRT 10.3 line 205-206, 11.1 line 134-135).
    bool has_plugin_creator(char const* name, char const* version, char const* plugin_namespace) override {
        // IPluginRegistry::getCreator(name, version, namespace): 10.3 line 254, 11.1 line 183.
        return runtime_->getPluginRegistry().getCreator(name, version, plugin_namespace) != nullptr;
    }
    bool load_plugin_library(std::string const& path) override {
        return runtime_->getPluginRegistry().loadLibrary(path.c_str()) != nullptr;
    }

    bool init_tensorrt_plugins(std::string const& library, std::string& why) override {
        // Never dlclose'd: the creators it registers live in it (trtexec keeps it open too).
        void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_GLOBAL);
        if (handle == nullptr) {
            char const* error = dlerror();
            why = error != nullptr ? error : "dlopen failed";
            return false;
        }
        // Looked up by name, not linked: engines without TensorRT's plugins run without the library.
        auto init = reinterpret_cast<InitLibNvInferPlugins>(dlsym(handle, "initLibNvInferPlugins"));
        if (init == nullptr) {
            why = library + " has no initLibNvInferPlugins (not TensorRT's plugin library?)";
            return false;
        }
        // The library keeps the logger for its plugins' messages: one never destroyed, so it
        // outlives this backend and the library's own exit-time code.
        static Logger* plugin_logger = new Logger;
        if (!init(static_cast<nvinfer1::ILogger*>(plugin_logger), "")) {
            why = "initLibNvInferPlugins returned false (the TensorRT log above says why)";
            return false;
        }
        return true;
    }

    std::unique_ptr<EngineHandle> deserialize(std::vector<char> const& blob) override {
        nvinfer1::ICudaEngine* engine = runtime_->deserializeCudaEngine(blob.data(), blob.size());
        if (engine == nullptr) return nullptr;
        return std::make_unique<TensorRTEngine>(runtime_, engine);
    }

    void warn(std::string const& message) override { std::fprintf(stderr, "trtnet: warning: %s\n", message.c_str()); }

    Stream create_stream() override {
        cudaStream_t stream = nullptr;
        check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
        return stream;
    }
    void destroy_stream(Stream stream) override { cudaStreamDestroy(stream); }
    void* device_alloc(size_t bytes) override {
        void* p = nullptr;
        check(cudaMalloc(&p, bytes), ("cudaMalloc of " + std::to_string(bytes) + " bytes").c_str());
        return p;
    }
    void device_free(void* ptr) override { cudaFree(ptr); }
    void* host_alloc(size_t bytes) override {
        void* p = nullptr;
        check(cudaMallocHost(&p, bytes), ("cudaMallocHost of " + std::to_string(bytes) + " bytes").c_str());
        return p;
    }
    void host_free(void* ptr) override { cudaFreeHost(ptr); }
    void copy_2d(void* dst, size_t dst_pitch, void const* src, size_t src_pitch, size_t width, size_t rows, Copy kind,
                 Stream stream) override {
        cudaMemcpyKind k = kind == Copy::kHostToDevice   ? cudaMemcpyHostToDevice
                           : kind == Copy::kDeviceToHost ? cudaMemcpyDeviceToHost
                                                         : cudaMemcpyDeviceToDevice;
        check(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows, k, stream), "cudaMemcpy2DAsync");
    }
    void synchronize(Stream stream) override { check(cudaStreamSynchronize(stream), "cudaStreamSynchronize"); }
    // "Makes all future work submitted to stream wait for all work captured in event"
    // (cuda_runtime_api.h, cudaStreamWaitEvent); flags 0 = cudaEventWaitDefault.
    void wait_event(CUevent_st* event, Stream stream) override {
        check(cudaStreamWaitEvent(stream, event, cudaEventWaitDefault), "cudaStreamWaitEvent (Frame::ready)");
    }
    void synchronize_event(CUevent_st* event) override {
        check(cudaEventSynchronize(event), "cudaEventSynchronize (Frame::ready)");
    }
    void* create_event() override {
        cudaEvent_t event = nullptr;
        check(cudaEventCreate(&event), "cudaEventCreate");
        return event;
    }
    void destroy_event(void* event) override { cudaEventDestroy(static_cast<cudaEvent_t>(event)); }
    void record(void* event, Stream stream) override {
        check(cudaEventRecord(static_cast<cudaEvent_t>(event), stream), "cudaEventRecord");
    }
    float elapsed_ms(void* start, void* end) override {
        float ms = 0.f;
        check(cudaEventSynchronize(static_cast<cudaEvent_t>(end)), "cudaEventSynchronize");
        check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)),
              "cudaEventElapsedTime");
        return ms;
    }

    bool begin_capture(Stream stream) override {
        // Thread-local mode as trtexec's TrtCudaGraph (samples/common/sampleDevice.h): other
        // threads' CUDA calls neither join nor break this capture.
        if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
            cudaGetLastError();  // not sticky: clear it
            return false;
        }
        return true;
    }
    void* end_capture(Stream stream) override {
        cudaGraph_t graph = nullptr;
        cudaGraphExec_t exec = nullptr;
        if (cudaStreamEndCapture(stream, &graph) != cudaSuccess || graph == nullptr) {
            cudaGetLastError();
            if (graph != nullptr) cudaGraphDestroy(graph);
            return nullptr;
        }
        cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
        cudaGraphDestroy(graph);
        if (status != cudaSuccess) {
            cudaGetLastError();
            return nullptr;
        }
        return exec;
    }
    void launch_graph(void* graph, Stream stream) override {
        check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph), stream), "cudaGraphLaunch");
    }
    void destroy_graph(void* graph) override { cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph)); }

    void range_push(char const* name) override {
        nvtxEventAttributes_t attributes{};
        attributes.version = NVTX_VERSION;
        attributes.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
        attributes.messageType = NVTX_MESSAGE_TYPE_ASCII;
        attributes.message.ascii = name;
        nvtxDomainRangePushEx(domain_, &attributes);
    }
    void range_pop() override { nvtxDomainRangePop(domain_); }

    void assemble_masks(MaskJob const& job, Stream stream) override {
        masks::MaskAssemblyArgs args;
        args.protos = job.protos;
        args.protoType = to_mask_dtype(job.proto_type, "proto");
        args.protoH = job.proto_h, args.protoW = job.proto_w, args.numProtos = job.mask_dim;
        args.coeffs = job.coeffs;
        args.boxes = job.boxes;
        args.detType = to_mask_dtype(job.det_type, "det/coeffs");
        args.numDetections = job.count;
        args.frameH = job.frame_h, args.frameW = job.frame_w;
        args.out = job.out;
        args.rowPitch = size_t(job.frame_w);
        args.maskPitch = size_t(job.frame_w) * size_t(job.frame_h);
        args.output = masks::Output::kMaskU8;
        args.crop = job.crop;
        size_t bytes = masks::workspaceSize(job.count, job.proto_h, job.proto_w);
        if (workspace_ == nullptr || bytes > workspace_bytes_) {
            if (workspace_ != nullptr) cudaFree(workspace_);  // waits for the kernels that used it
            workspace_ = nullptr;
            workspace_bytes_ = 0;
            workspace_ = device_alloc(bytes);
            workspace_bytes_ = bytes;
        }
        cudaError_t status = masks::launchAssemble(args, workspace_, stream);
        if (status == cudaErrorInvalidValue) {
            throw Error(ErrorCode::kUsage, std::string("mask assembly refused its arguments: ") + masks::checkArgs(args));
        }
        check(status, "mask assembly launch");
    }

private:
    Logger logger_;
    std::shared_ptr<nvinfer1::IRuntime> runtime_;
    nvtxDomainHandle_t domain_ = nullptr;
    void* workspace_ = nullptr;
    size_t workspace_bytes_ = 0;
};

}  // namespace

std::shared_ptr<Backend> make_tensorrt_backend() { return std::make_shared<TensorRTBackend>(); }

Segmenter::Segmenter(std::string const& engine_path, Options const& options)
    : Segmenter(engine_path, options, make_tensorrt_backend()) {}

VideoSegmenter::VideoSegmenter(std::string const& keyframe_engine, std::string const& nonkeyframe_engine,
                               VideoOptions const& options)
    : VideoSegmenter(keyframe_engine, nonkeyframe_engine, options, make_tensorrt_backend()) {}

}  // namespace trtnet
