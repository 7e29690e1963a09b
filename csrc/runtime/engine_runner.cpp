#include "engine_runner.h"

#include <algorithm>
#include <sstream>

namespace trtnet {

size_t dtype_size(DType type) {
    switch (type) {
    case DType::kFloat: return 4;
    case DType::kHalf: return 2;
    case DType::kInt8: return 1;
    case DType::kInt32: return 4;
    case DType::kInt64: return 8;
    case DType::kBool: return 1;
    case DType::kUInt8: return 1;
    case DType::kOther: return 0;
    }
    return 0;
}

char const* dtype_name(DType type) {
    switch (type) {
    case DType::kFloat: return "float32";
    case DType::kHalf: return "float16";
    case DType::kInt8: return "int8";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kBool: return "bool";
    case DType::kUInt8: return "uint8";
    case DType::kOther: return "an unsupported type";
    }
    return "?";
}

std::string shape_str(Shape const& shape) {
    std::ostringstream out;
    out << '[';
    for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
    out << ']';
    return out.str();
}

int64_t volume(Shape const& shape) {
    int64_t v = 1;
    for (int64_t d : shape) {
        if (d < 0) return -1;
        v *= d;
    }
    return v;
}

EngineRunner::EngineRunner(Backend& backend, std::unique_ptr<EngineHandle> engine, std::string source,
                           bool cuda_graphs)
    : backend_(backend), engine_(std::move(engine)), source_(std::move(source)), cuda_graphs_(cuda_graphs) {
    for (TensorDesc const& desc : engine_->tensors()) {
        if (dtype_size(desc.type) == 0) {
            throw Error(ErrorCode::kTensorRT, "tensor '" + desc.name + "' of " + source_ +
                                                  " has a TensorRT type the runtime cannot hold; rebuild the engine "
                                                  "with python -m trtnet.build");
        }
        slots_.push_back(Slot{desc, {}, nullptr, 0, nullptr});
    }
}

EngineRunner::~EngineRunner() {
    drop_graph();
    for (Slot& s : slots_) {
        if (s.owned != nullptr) backend_.device_free(s.owned);
    }
}

TensorDesc const* EngineRunner::find(std::string const& name) const {
    for (Slot const& s : slots_) {
        if (s.desc.name == name) return &s.desc;
    }
    return nullptr;
}

bool EngineRunner::has_input(std::string const& name) const {
    TensorDesc const* d = find(name);
    return d != nullptr && d->input;
}

bool EngineRunner::has_output(std::string const& name) const {
    TensorDesc const* d = find(name);
    return d != nullptr && !d->input;
}

std::vector<std::string> EngineRunner::names(bool inputs) const {
    std::vector<std::string> out;
    for (Slot const& s : slots_) {
        if (s.desc.input == inputs) out.push_back(s.desc.name);
    }
    return out;
}

EngineRunner::Slot& EngineRunner::slot(std::string const& name) {
    for (Slot& s : slots_) {
        if (s.desc.name == name) return s;
    }
    throw Error(ErrorCode::kWrongRole, source_ + " has no tensor named '" + name + "'");
}

EngineRunner::Slot const& EngineRunner::slot(std::string const& name) const {
    return const_cast<EngineRunner*>(this)->slot(name);
}

Profile EngineRunner::profile(std::string const& input) const { return engine_->profile(input); }

void EngineRunner::check_in_profile(std::string const& input, Shape const& shape) const {
    Slot const& s = slot(input);
    Shape const& declared = s.desc.declared;
    if (shape.size() != declared.size()) {
        throw Error(ErrorCode::kFrameSize, "input '" + input + "' of " + source_ + ": shape " + shape_str(shape) +
                                               " has rank " + std::to_string(shape.size()) + ", the engine's is " +
                                               shape_str(declared));
    }
    if (std::find(declared.begin(), declared.end(), -1) == declared.end()) {
        if (shape != declared) {
            throw Error(ErrorCode::kFrameSize, "input '" + input + "' of " + source_ + ": shape " + shape_str(shape) +
                                                   ", the engine needs " + shape_str(declared));
        }
        return;
    }
    Profile p = engine_->profile(input);
    bool inside = p.min.size() == shape.size() && p.max.size() == shape.size();
    for (size_t i = 0; inside && i < shape.size(); ++i) inside = p.min[i] <= shape[i] && shape[i] <= p.max[i];
    if (inside) return;
    if (input == names::kInput && shape.size() == 4 && p.min.size() == 4 && p.max.size() == 4) {
        std::string msg = "frame " + std::to_string(shape[1]) + "x" + std::to_string(shape[2]) + " (HxW)";
        if (shape[0] != 1) msg = "batch of " + std::to_string(shape[0]) + " frames " + std::to_string(shape[1]) +
                                 "x" + std::to_string(shape[2]) + " (HxW)";
        throw Error(ErrorCode::kFrameSize,
                    msg + " is outside the optimization profile of " + source_ + ": min " +
                        std::to_string(p.min[1]) + "x" + std::to_string(p.min[2]) + ", max " +
                        std::to_string(p.max[1]) + "x" + std::to_string(p.max[2]) + ", batch " +
                        std::to_string(p.min[0]) + ".." + std::to_string(p.max[0]) +
                        "; resize the frame or rebuild the engine with python -m trtnet.build --min-frame/--max-frame");
    }
    throw Error(ErrorCode::kFrameSize, "input '" + input + "': shape " + shape_str(shape) +
                                           " is outside the optimization profile of " + source_ + ": min " +
                                           shape_str(p.min) + ", max " + shape_str(p.max));
}

void EngineRunner::configure(std::map<std::string, Shape> const& shapes, std::map<std::string, void*> const& external) {
    for (auto const& kv : shapes) {
        if (!has_input(kv.first)) throw Error(ErrorCode::kUsage, source_ + " has no input '" + kv.first + "'");
    }
    for (auto const& kv : external) slot(kv.first);  // throws for unknown names
    bool changed = !configured_;
    for (Slot& s : slots_) {
        if (!s.desc.input) continue;
        auto given = shapes.find(s.desc.name);
        if (given == shapes.end()) throw Error(ErrorCode::kUsage, "input '" + s.desc.name + "' of " + source_ + " not given");
        if (given->second != s.shape) changed = true;
    }
    for (Slot& s : slots_) {
        auto ext = external.find(s.desc.name);
        if (ext != external.end() ? ext->second != s.bound : (s.bound != s.owned || s.owned == nullptr)) changed = true;
    }
    if (!changed) return;

    configured_ = false;  // until every call below has succeeded
    for (Slot& s : slots_) {
        if (!s.desc.input) continue;
        Shape const& shape = shapes.at(s.desc.name);
        check_in_profile(s.desc.name, shape);  // before TensorRT sees it
        if (!engine_->set_input_shape(s.desc.name, shape)) {
            throw Error(ErrorCode::kTensorRT, "TensorRT rejected shape " + shape_str(shape) + " for input '" +
                                                  s.desc.name + "' of " + source_);
        }
        s.shape = shape;
    }
    for (Slot& s : slots_) {
        if (s.desc.input) continue;
        s.shape = engine_->tensor_shape(s.desc.name);
        if (volume(s.shape) < 0) {
            throw Error(ErrorCode::kTensorRT, "TensorRT could not infer the shape " + shape_str(s.shape) + " of output '" +
                                                  s.desc.name + "' of " + source_);
        }
    }
    for (Slot& s : slots_) {
        auto ext = external.find(s.desc.name);
        if (ext != external.end()) {
            s.bound = ext->second;
        } else {
            size_t bytes = size_t(volume(s.shape)) * dtype_size(s.desc.type);
            if (s.owned == nullptr || bytes > s.capacity) {
                if (s.owned != nullptr) backend_.device_free(s.owned);
                s.owned = nullptr;
                s.capacity = 0;
                s.owned = backend_.device_alloc(std::max<size_t>(bytes, 1));
                s.capacity = bytes;
            }
            s.bound = s.owned;
        }
        if (!engine_->set_address(s.desc.name, s.bound)) {
            throw Error(ErrorCode::kTensorRT, "TensorRT rejected the device address of '" + s.desc.name + "' of " +
                                                  source_ + " (misaligned?)");
        }
    }
    configured_ = true;
    ++generation_;
}

void* EngineRunner::buffer(std::string const& name) const { return slot(name).bound; }
Shape const& EngineRunner::shape(std::string const& name) const { return slot(name).shape; }
DType EngineRunner::type(std::string const& name) const { return slot(name).desc.type; }

void EngineRunner::drop_graph() {
    if (graph_ != nullptr) backend_.destroy_graph(graph_);
    graph_ = nullptr;
    graph_generation_ = 0;
}

void EngineRunner::plain_enqueue(Stream stream) {
    if (!engine_->enqueue(stream)) {
        throw Error(ErrorCode::kTensorRT, "TensorRT failed to enqueue " + source_ + " (see the TensorRT log)");
    }
}

void EngineRunner::run(Stream stream) {
    if (!configured_) throw Error(ErrorCode::kUsage, source_ + ": run() before configure()");
    if (graph_ != nullptr && graph_generation_ == generation_) {
        backend_.launch_graph(graph_, stream);
        last_run_ = LastRun::kReplayed;
    } else if (cuda_graphs_ && last_run_generation_ == generation_ && capture_failed_generation_ != generation_) {
        // The previous run had these shapes and addresses: TensorRT has done its first-run work
        // (NvInferRuntime.h enqueueV3: a streaming-weights engine "will not be capturable", so
        // failure is expected on some engines and falls back).
        drop_graph();
        bool capturing = backend_.begin_capture(stream);
        bool enqueued = capturing && engine_->enqueue(stream);
        void* graph = capturing ? backend_.end_capture(stream) : nullptr;
        if (enqueued && graph != nullptr) {
            graph_ = graph;
            graph_generation_ = generation_;
            backend_.launch_graph(graph_, stream);
            last_run_ = LastRun::kCaptured;
        } else {
            if (graph != nullptr) backend_.destroy_graph(graph);
            capture_failed_generation_ = generation_;
            backend_.warn("CUDA graph capture of " + source_ + " failed; enqueueing it plainly at these shapes");
            plain_enqueue(stream);
            last_run_ = LastRun::kCaptureFailed;
        }
    } else {
        drop_graph();  // any change of shape or address makes a captured graph stale
        plain_enqueue(stream);
        last_run_ = LastRun::kPlain;
    }
    last_run_generation_ = generation_;
}

}  // namespace trtnet
