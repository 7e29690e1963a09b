// Segmenter and VideoSegmenter: the frame loop over one or two EngineRunners. Everything
// here talks to TensorRT and CUDA only through Backend (backend.h), so the same code runs
// against the fake backend in csrc/runtime/tests.
//
// Per call: [upload] the frame rows (any pitch) go into the engine's input buffer (host
// frames through pinned staging); [engine keyframe | engine nonkeyframe] the engine runs (a CUDA graph
// once the shapes repeat); [postprocess] the small detection tensors come back to pinned
// memory and the stream is synchronised once -- the detections are the host results the
// caller asked for; [masks] the kept detections' masks are assembled on the device, and
// nothing waits for them until the caller copies them (Instances::masks_to_host).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <string_view>

#include "backend.h"
#include "common/hd.h"
#include "engine_runner.h"
#include "sidecar.h"

namespace trtnet {

// Owner of the device masks every Instances of one segmenter points into.
class MaskStore {
public:
    Backend* backend = nullptr;
    Stream stream = nullptr;
    uint64_t generation = 1;  // bumped by every segment() call: older Instances' masks are stale
    bool alive = true;        // false once the segmenter is gone
};

uint8_t const* Instances::device_masks() const {
    if (detections_.empty()) return nullptr;
    if (!store_ || !store_->alive || store_->generation != generation_) {
        throw Error(ErrorCode::kStaleMasks,
                    "these masks were overwritten by a later segment() call (or the segmenter is gone); "
                    "copy them with masks_to_host() before the next call");
    }
    return masks_;
}

void Instances::masks_to_host(uint8_t* dst) const {
    uint8_t const* src = device_masks();
    if (src == nullptr) return;
    size_t bytes = size() * size_t(height_) * size_t(width_);
    store_->backend->copy_2d(dst, bytes, src, bytes, bytes, 1, Copy::kDeviceToHost, store_->stream);
    store_->backend->synchronize(store_->stream);
}

std::vector<uint8_t> Instances::masks_to_host() const {
    std::vector<uint8_t> out(size() * size_t(height_) * size_t(width_));
    masks_to_host(out.data());
    return out;
}

namespace {

constexpr size_t kMinEngineBytes = 256;  // as trtnet/runtime/engine.py MIN_ENGINE_BYTES

// libtrtnet_plugins.so's creators (plugins/*/..._plugin.h kName, plugins/common/plugin_utils.h
// kVersion / kNamespace; trtnet/plugins/specs.py NAMESPACE, VERSION, FAST_NMS, INVERSE_WARP).
constexpr char const* kPluginNames[] = {"FastNMS", "InverseWarp"};
constexpr char const* kPluginVersion = "1";
constexpr char const* kPluginNamespace = "trtnet";

// TensorRT's own plugin that YOLACT++'s DCNv2 layers use (trtnet/plugins/specs.py TENSORRT_PLUGINS):
// libnvinfer_plugin registers version "1" (IPluginV2DynamicExt) in 10.3, "2" (IPluginV3, and
// still "1") in 11.x, in namespace "" (TRT_PLUGIN_NAMESPACE). A plan names each plugin layer's
// creator by this type string, which is how trtnet/runtime/engine.py recognises such an engine.
constexpr char const* kDcnPlugin = "ModulatedDeformConv2d";
constexpr char const* kDcnVersions[] = {"2", "1"};
constexpr char const* kTensorRTPluginNamespace = "";

std::string directory_of(std::string const& path) {
    size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash == 0 ? 1 : slash);
}

std::string basename_of(std::string const& path) {
    size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool file_exists(std::string const& path) { return std::ifstream(path).good(); }

// The checks that need no TensorRT (trtnet/runtime/engine.py read_engine_file).
std::vector<char> read_engine(std::string const& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) throw Error(ErrorCode::kEngineFile, "engine file not found or unreadable: " + path);
    std::vector<char> data((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (data.size() < kMinEngineBytes) {
        throw Error(ErrorCode::kEngineFile, "engine file " + path + " is " + std::to_string(data.size()) +
                                                " bytes, too small for a TensorRT engine (truncated?); rebuild it "
                                                "with python -m trtnet.build");
    }
    struct Magic {
        char const* bytes;
        size_t n;
        char const* kind;
    };
    static Magic const magics[] = {{"PK\x03\x04", 4, "a zip archive (a PyTorch .pth checkpoint?)"},
                                   {"\x80\x02", 2, "a Python pickle (a legacy PyTorch .pth checkpoint?)"},
                                   {"\x89PNG", 4, "a PNG image"},
                                   {"\xff\xd8\xff", 3, "a JPEG image"},
                                   {"{", 1, "a JSON file (the sidecar?)"}};
    for (Magic const& m : magics) {
        if (std::memcmp(data.data(), m.bytes, m.n) == 0) {
            throw Error(ErrorCode::kEngineFile, "engine file " + path + " looks like " + m.kind +
                                                    ", not a TensorRT engine; build one with python -m trtnet.build");
        }
    }
    uint64_t head = 0;
    std::memcpy(&head, data.data(), 8);
    if (head >= 2 && head < data.size() && data[8] == '{' && data[9] == '"') {
        throw Error(ErrorCode::kEngineFile, "engine file " + path + " looks like a safetensors checkpoint, not a "
                                                "TensorRT engine; build one with python -m trtnet.build");
    }
    return data;
}

float read_float(void const* base, DType type, size_t i) {
    if (type == DType::kHalf) {
        half_t h;
        std::memcpy(&h, static_cast<char const*>(base) + i * 2, 2);
        return half_to_float(h);
    }
    float f;
    std::memcpy(&f, static_cast<char const*>(base) + i * 4, 4);
    return f;
}

int64_t read_int(void const* base, DType type, size_t i) {
    if (type == DType::kInt64) {
        int64_t v;
        std::memcpy(&v, static_cast<char const*>(base) + i * 8, 8);
        return v;
    }
    int32_t v;
    std::memcpy(&v, static_cast<char const*>(base) + i * 4, 4);
    return v;
}

// Upstream's sanitize_coordinates(padding=0) + .long() on one axis (trtnet/runtime/masks.py boxes_to_pixels).
void to_pixels(float lo, float hi, int size, int64_t& a_out, int64_t& b_out) {
    float a = lo * float(size), b = hi * float(size);
    float low = std::max(std::min(a, b), 0.f);
    float high = std::min(std::max(a, b), float(size));
    a_out = std::isfinite(low) ? int64_t(low) : 0;
    b_out = std::isfinite(high) ? int64_t(high) : 0;
}

class Range {  // one NVTX range, closed on every path out
public:
    Range(Backend& backend, char const* name) : backend_(backend) { backend_.range_push(name); }
    ~Range() { backend_.range_pop(); }
    Range(Range const&) = delete;
    Range& operator=(Range const&) = delete;

private:
    Backend& backend_;
};

}  // namespace

// The state both segmenters share: backend, stream, staging, readback and mask buffers.
class Pipeline {
public:
    Pipeline(std::shared_ptr<Backend> backend, Options const& options)
        : backend_(std::move(backend)), be_(*backend_), options_(options) {
        if (options_.top_k < 0) throw Error(ErrorCode::kUsage, "top_k must be >= 0, got " + std::to_string(options_.top_k));
        if (!std::isfinite(options_.score_threshold)) throw Error(ErrorCode::kUsage, "score_threshold must be finite");
        stream_ = options_.stream;
        if (stream_ == nullptr) {
            stream_ = be_.create_stream();
            own_stream_ = true;
        }
        store_ = std::make_shared<MaskStore>();
        store_->backend = &be_;
        store_->stream = stream_;
        if (options_.timing) {
            for (void*& e : events_) e = be_.create_event();
        }
    }

    ~Pipeline() {
        store_->alive = false;
        try {
            be_.synchronize(stream_);  // nothing of ours may still run on what we free
        } catch (...) {
        }
        runners_.clear();
        if (staging_ != nullptr) be_.host_free(staging_);
        if (readback_ != nullptr) be_.host_free(readback_);
        if (scratch_ != nullptr) be_.device_free(scratch_);
        if (masks_ != nullptr) be_.device_free(masks_);
        for (void* e : events_) {
            if (e != nullptr) be_.destroy_event(e);
        }
        if (own_stream_) be_.destroy_stream(stream_);
    }

    Backend& backend() { return be_; }
    Stream stream() const { return stream_; }
    Options const& options() const { return options_; }

    // Sidecar, version and GPU checks, plugin library, deserialization.
    EngineRunner& load(std::string const& path, std::string const& sidecar, EngineInfo& info) {
        info.path = path;
        read_sidecar(sidecar.empty() ? path + ".json" : sidecar, info);
        int32_t lib = be_.library_version();
        int32_t built = parse_tensorrt_version(info.tensorrt_version);
        if (built >= 0) {  // "unknown" (not recorded) is not checked: TensorRT's deserialization still is
            if (built != lib) {
                throw Error(ErrorCode::kVersion, path + " was built by TensorRT " + info.tensorrt_version +
                                                     "; this program runs TensorRT " + format_tensorrt_version(lib) +
                                                     ", which cannot load it: rebuild the engine on this machine with "
                                                     "python -m trtnet.build");
            }
        }
        if (!info.gpu.empty()) {
            std::string here = be_.compute_capability();
            if (here != info.gpu) {
                throw Error(ErrorCode::kDevice, path + " was built for a GPU of compute capability " + info.gpu +
                                                    "; this GPU is " + here +
                                                    ": rebuild the engine on this machine with python -m trtnet.build");
            }
        }
        load_plugins(path, info);
        std::vector<char> blob = read_engine(path);
        if (info.engine_bytes >= 0 && size_t(info.engine_bytes) != blob.size()) {
            throw Error(ErrorCode::kSidecar, "the sidecar of " + path + " describes an engine of " +
                                                 std::to_string(info.engine_bytes) + " bytes, the file has " +
                                                 std::to_string(blob.size()) +
                                                 ": it belongs to another build; copy the sidecar written with this engine");
        }
        load_tensorrt_plugins(path, info, blob);
        std::unique_ptr<EngineHandle> engine = be_.deserialize(blob);
        if (!engine) {
            throw Error(ErrorCode::kEngineFile, "TensorRT " + format_tensorrt_version(lib) + " could not deserialize " +
                                                    path + " (" + std::to_string(blob.size()) +
                                                    " bytes): the file is corrupt, or was built by another TensorRT "
                                                    "version or for another GPU (the TensorRT log above says more); "
                                                    "rebuild it with python -m trtnet.build");
        }
        runners_.push_back(std::make_unique<EngineRunner>(be_, std::move(engine), path, options_.cuda_graphs));
        EngineRunner& runner = *runners_.back();
        if (!info.io.empty()) {
            std::vector<std::string> recorded = info.io, actual = runner.names(true), outputs = runner.names(false);
            actual.insert(actual.end(), outputs.begin(), outputs.end());
            std::sort(recorded.begin(), recorded.end());
            std::sort(actual.begin(), actual.end());
            if (recorded != actual) {
                throw Error(ErrorCode::kSidecar, "the sidecar of " + path + " lists other I/O tensors than the engine "
                                                     "has: it belongs to another build; copy the sidecar written with "
                                                     "this engine");
            }
        }
        if (!runner.has_input(names::kInput)) {
            throw Error(ErrorCode::kWrongRole, path + " has no '" + names::kInput + "' input: not a trtnet engine");
        }
        for (char const* out : {names::kDetCount, names::kDetBoxes, names::kDetScores, names::kDetClasses,
                                names::kDetCoeffs, names::kProto}) {
            if (!runner.has_output(out)) {
                throw Error(ErrorCode::kWrongRole, path + " has no output '" + out +
                                                       "': not a trtnet detector engine (build it with python -m "
                                                       "trtnet.build)");
            }
        }
        Profile p = runner.profile(names::kInput);
        if (p.min.size() == 4 && p.max.size() == 4) {
            info.max_batch = int(p.max[0]);
            info.min_height = int(p.min[1]), info.min_width = int(p.min[2]);
            info.max_height = int(p.max[1]), info.max_width = int(p.max[2]);
        }
        return runner;
    }

    // [B, H, W, 3] of a batch of frames, after checking each frame.
    static Shape frame_shape(std::vector<Frame> const& frames) {
        if (frames.empty()) throw Error(ErrorCode::kFrame, "no frame given");
        for (size_t i = 0; i < frames.size(); ++i) {
            Frame const& f = frames[i];
            std::string which = frames.size() > 1 ? "frame " + std::to_string(i) : std::string("the frame");
            if (f.width <= 0 || f.height <= 0) {
                throw Error(ErrorCode::kFrame, which + " is " + std::to_string(f.width) + "x" + std::to_string(f.height) +
                                                   " (WxH): it must have pixels");
            }
            if (f.data == nullptr) throw Error(ErrorCode::kFrame, which + " has no data (nullptr)");
            if (f.pitch != 0 && f.pitch < size_t(f.width) * 3) {
                throw Error(ErrorCode::kFrame, which + ": row pitch " + std::to_string(f.pitch) +
                                                   " bytes is less than width * 3 = " + std::to_string(f.width * 3) +
                                                   " (a BGR8 frame has 3 bytes per pixel)");
            }
            if (f.width != frames[0].width || f.height != frames[0].height) {
                throw Error(ErrorCode::kFrame, "frames of one batch must have one size: frame 0 is " +
                                                   std::to_string(frames[0].width) + "x" + std::to_string(frames[0].height) +
                                                   ", " + which + " is " + std::to_string(f.width) + "x" +
                                                   std::to_string(f.height) + " (WxH)");
            }
        }
        return Shape{int64_t(frames.size()), frames[0].height, frames[0].width, 3};
    }

    // Starts a call: older Instances' masks become stale, timing starts.
    void begin() {
        ++store_->generation;
        mark(0);
    }

    // [upload] frame rows into `runner`'s (configured) frame input.
    void upload(std::vector<Frame> const& frames, EngineRunner& runner) {
        Range range(be_, nvtx::kUpload);
        size_t row = size_t(frames[0].width) * 3, rows = size_t(frames[0].height), frame_bytes = row * rows;
        auto* input = static_cast<uint8_t*>(runner.buffer(names::kInput));
        bool any_host = std::any_of(frames.begin(), frames.end(),
                                    [](Frame const& f) { return f.memory == Frame::Memory::kHost; });
        if (any_host) {
            // The previous call's copy out of the staging buffer must be done before we refill it
            // (always true after a completed call: it synchronised; not after one that threw).
            if (staging_pending_) be_.synchronize(stream_);
            reserve_host(staging_, staging_capacity_, frame_bytes * frames.size());
        }
        // Frames written on another stream: ours is cudaStreamNonBlocking (tensorrt_backend.cpp),
        // so nothing orders it after the producer unless we wait on the producer's event.
        // cudaStreamWaitEvent: "Makes all future work submitted to stream wait for all work
        // captured in event" (CUDA runtime API, cuda_runtime_api.h, cudaStreamWaitEvent).
        // A host frame is read by the CPU (memcpy below): the host waits (cudaEventSynchronize).
        for (size_t b = 0; b < frames.size(); ++b) {
            Frame const& f = frames[b];
            if (f.ready == nullptr) continue;
            bool seen = false;  // one wait per event, however many frames it covers
            for (size_t a = 0; a < b && !seen; ++a) seen = frames[a].ready == f.ready && frames[a].memory == f.memory;
            if (seen) continue;
            if (f.memory == Frame::Memory::kDevice) be_.wait_event(f.ready, stream_);
            else be_.synchronize_event(f.ready);
        }
        for (size_t b = 0; b < frames.size(); ++b) {
            Frame const& f = frames[b];
            uint8_t* dst = input + b * frame_bytes;
            if (f.memory == Frame::Memory::kDevice) {
                be_.copy_2d(dst, row, f.data, f.row_pitch(), row, rows, Copy::kDeviceToDevice, stream_);
            } else {
                auto* stage = static_cast<uint8_t*>(staging_) + b * frame_bytes;
                auto const* src = static_cast<uint8_t const*>(f.data);
                for (size_t y = 0; y < rows; ++y) std::memcpy(stage + y * row, src + y * f.row_pitch(), row);
                be_.copy_2d(dst, frame_bytes, stage, frame_bytes, frame_bytes, 1, Copy::kHostToDevice, stream_);
                staging_pending_ = true;
            }
        }
        mark(1);
    }

    void run(EngineRunner& runner, char const* range_name) {
        Range range(be_, range_name);
        runner.run(stream_);
        mark(2);
    }

    // [postprocess] + [masks]: the detections of every frame of the batch.
    // With `motion`, also reads the non-keyframe's flow/motion (max over the batch) in the same wait;
    // an engine with mask_scores (YOLACT++) has them read in it too (Instance::mask_score).
    std::vector<Instances> finish(EngineRunner& runner, EngineInfo const& info, int height, int width, int batch,
                                  float* motion = nullptr) {
        struct Out {
            char const* name;
            size_t offset, bytes;
            DType type;
        };
        Out outs[6] = {{names::kDetCount, 0, 0, DType::kInt32},
                       {names::kDetBoxes, 0, 0, DType::kFloat},
                       {names::kDetScores, 0, 0, DType::kFloat},
                       {names::kDetClasses, 0, 0, DType::kInt32},
                       {names::kFlowMotion, 0, 0, DType::kFloat},
                       {names::kMaskScores, 0, 0, DType::kFloat}};
        std::vector<size_t> read = {0, 1, 2, 3};  // indices into outs of what this call reads back
        if (motion != nullptr) read.push_back(4);
        bool rescored = runner.has_output(names::kMaskScores);
        if (rescored) read.push_back(5);
        Shape const& boxes_shape = runner.shape(names::kDetBoxes);
        if (boxes_shape.size() != 3 || boxes_shape[0] != batch || boxes_shape[2] != 4) {
            throw Error(ErrorCode::kWrongRole, runner.source() + ": det/boxes is " + shape_str(boxes_shape) +
                                                   ", expected [batch, max_det, 4]");
        }
        size_t max_det = size_t(boxes_shape[1]);
        std::vector<Instances> result(static_cast<size_t>(batch));
        std::vector<std::vector<int32_t>> kept(static_cast<size_t>(batch));
        {
            Range range(be_, nvtx::kPostprocess);
            size_t total = 0;
            for (size_t j : read) {
                Out& o = outs[j];
                o.type = runner.type(o.name);
                size_t want = std::string(o.name) == names::kDetCount || std::string(o.name) == names::kFlowMotion
                                  ? size_t(batch)
                              : std::string(o.name) == names::kDetBoxes ? size_t(batch) * max_det * 4
                                                                        : size_t(batch) * max_det;
                if (size_t(volume(runner.shape(o.name))) != want) {
                    throw Error(ErrorCode::kWrongRole, runner.source() + ": output '" + o.name + "' is " +
                                                           shape_str(runner.shape(o.name)) + ", expected " +
                                                           std::to_string(want) + " values for a batch of " +
                                                           std::to_string(batch));
                }
                o.offset = total;
                o.bytes = want * dtype_size(o.type);
                total += (o.bytes + 7) / 8 * 8;
            }
            reserve_host(readback_, readback_capacity_, total);
            auto* host = static_cast<uint8_t*>(readback_);
            for (size_t j : read) {
                Out const& o = outs[j];
                be_.copy_2d(host + o.offset, o.bytes, runner.buffer(o.name), o.bytes, o.bytes, 1, Copy::kDeviceToHost,
                            stream_);
            }
            be_.synchronize(stream_);  // the one wait per call: the caller asked for these on the host
            staging_pending_ = false;
            mark(3);
            if (rescored && outs[5].type != DType::kFloat && outs[5].type != DType::kHalf) {
                throw Error(ErrorCode::kWrongRole, runner.source() + ": mask_scores is " + dtype_name(outs[5].type));
            }
            if (motion != nullptr) {
                if (outs[4].type != DType::kFloat && outs[4].type != DType::kHalf) {
                    throw Error(ErrorCode::kWrongRole, runner.source() + ": flow/motion is " + dtype_name(outs[4].type));
                }
                *motion = -1.f;
                for (int b = 0; b < batch; ++b) *motion = std::max(*motion, read_float(host + outs[4].offset, outs[4].type, size_t(b)));
            }
            float threshold = options_.score_threshold;
            for (int b = 0; b < batch; ++b) {
                int64_t n = read_int(host + outs[0].offset, outs[0].type, size_t(b));
                n = std::max<int64_t>(0, std::min<int64_t>(n, int64_t(max_det)));
                size_t base = size_t(b) * max_det;
                std::vector<int32_t>& keep = kept[size_t(b)];
                for (int64_t i = 0; i < n; ++i) {
                    float score = read_float(host + outs[2].offset, outs[2].type, base + size_t(i));
                    if (threshold <= 0.f || score > threshold) keep.push_back(int32_t(i));  // masks.py postprocess
                }
                auto key = [&](int32_t i) {  // NaN last: a strict weak order whatever the engine wrote
                    float v = read_float(host + outs[2].offset, outs[2].type, base + size_t(i));
                    return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v;
                };
                std::stable_sort(keep.begin(), keep.end(), [&](int32_t x, int32_t y) { return key(x) > key(y); });
                if (options_.top_k > 0 && keep.size() > size_t(options_.top_k)) keep.resize(size_t(options_.top_k));
                Instances& inst = result[size_t(b)];
                inst.height_ = height;
                inst.width_ = width;
                for (int32_t i : keep) {
                    Instance d;
                    size_t k = base + size_t(i);
                    d.class_id = int(read_int(host + outs[3].offset, outs[3].type, k));
                    if (d.class_id >= 0 && size_t(d.class_id) < info.classes.size()) d.class_name = info.classes[size_t(d.class_id)];
                    d.score = read_float(host + outs[2].offset, outs[2].type, k);
                    d.mask_score = rescored ? read_float(host + outs[5].offset, outs[5].type, k) : d.score;
                    to_pixels(read_float(host + outs[1].offset, outs[1].type, k * 4 + 0),
                              read_float(host + outs[1].offset, outs[1].type, k * 4 + 2), width, d.box.x1, d.box.x2);
                    to_pixels(read_float(host + outs[1].offset, outs[1].type, k * 4 + 1),
                              read_float(host + outs[1].offset, outs[1].type, k * 4 + 3), height, d.box.y1, d.box.y2);
                    inst.detections_.push_back(std::move(d));
                }
            }
        }
        assemble(runner, kept, result, height, width, max_det);
        mark(4);
        return result;
    }

    StageTimes times() {
        StageTimes t;
        if (!options_.timing) return t;
        t.upload = be_.elapsed_ms(events_[0], events_[1]);
        t.network = be_.elapsed_ms(events_[1], events_[2]);
        t.postprocess = be_.elapsed_ms(events_[2], events_[3]);
        t.masks = be_.elapsed_ms(events_[3], events_[4]);
        return t;
    }

private:
    // [masks] of the kept detections, on the device, not waited for.
    void assemble(EngineRunner& runner, std::vector<std::vector<int32_t>> const& kept, std::vector<Instances>& result,
                  int height, int width, size_t max_det) {
        Range range(be_, nvtx::kMasks);
        size_t total = 0;
        for (auto const& k : kept) total += k.size();
        for (Instances& inst : result) {
            inst.store_ = store_;
            inst.generation_ = store_->generation;
        }
        if (total == 0) return;
        Shape const& proto = runner.shape(names::kProto);
        Shape const& coeffs = runner.shape(names::kDetCoeffs);
        size_t batch = kept.size();
        if (proto.size() != 4 || size_t(proto[0]) != batch || coeffs.size() != 3 || size_t(coeffs[0]) != batch ||
            size_t(coeffs[1]) != max_det || coeffs[2] != proto[3]) {
            throw Error(ErrorCode::kWrongRole, runner.source() + ": proto " + shape_str(proto) + " and det/coeffs " +
                                                   shape_str(coeffs) +
                                                   " do not fit together ([B, Hp, Wp, K] and [B, max_det, K])");
        }
        DType pt = runner.type(names::kProto), dt = runner.type(names::kDetCoeffs);
        if (runner.type(names::kDetBoxes) != dt) {
            throw Error(ErrorCode::kWrongRole, runner.source() + ": det/boxes is " +
                                                   dtype_name(runner.type(names::kDetBoxes)) + " and det/coeffs " +
                                                   dtype_name(dt) + "; Fast NMS writes both in one type");
        }
        size_t plane = size_t(height) * size_t(width);
        reserve_device(masks_, masks_capacity_, total * plane);
        size_t proto_bytes = size_t(proto[1] * proto[2] * proto[3]) * dtype_size(pt);
        size_t coeff_row = size_t(coeffs[2]) * dtype_size(dt), box_row = 4 * dtype_size(dt);
        auto const* proto_base = static_cast<char const*>(runner.buffer(names::kProto));
        auto const* coeff_base = static_cast<char const*>(runner.buffer(names::kDetCoeffs));
        auto const* box_base = static_cast<char const*>(runner.buffer(names::kDetBoxes));
        size_t offset = 0, gathered = 0;
        for (size_t b = 0; b < batch; ++b) {
            std::vector<int32_t> const& keep = kept[b];
            if (keep.empty()) continue;
            MaskJob job;
            job.protos = proto_base + b * proto_bytes;
            job.coeffs = coeff_base + b * max_det * coeff_row;
            job.boxes = box_base + b * max_det * box_row;
            bool prefix = true;
            for (size_t i = 0; i < keep.size(); ++i) prefix = prefix && keep[i] == int32_t(i);
            if (!prefix) {  // not best-first: copy the kept rows together (device to device)
                reserve_device(scratch_, scratch_capacity_, max_det * batch * (coeff_row + box_row));
                auto* rows = static_cast<char*>(scratch_) + gathered * (coeff_row + box_row);
                auto* box_rows = rows + keep.size() * coeff_row;
                for (size_t i = 0; i < keep.size(); ++i) {
                    be_.copy_2d(rows + i * coeff_row, coeff_row, static_cast<char const*>(job.coeffs) + size_t(keep[i]) * coeff_row,
                                coeff_row, coeff_row, 1, Copy::kDeviceToDevice, stream_);
                    be_.copy_2d(box_rows + i * box_row, box_row, static_cast<char const*>(job.boxes) + size_t(keep[i]) * box_row,
                                box_row, box_row, 1, Copy::kDeviceToDevice, stream_);
                }
                job.coeffs = rows;
                job.boxes = box_rows;
                gathered += keep.size();
            }
            job.proto_type = pt, job.det_type = dt;
            job.proto_h = int(proto[1]), job.proto_w = int(proto[2]), job.mask_dim = int(proto[3]);
            job.count = int(keep.size());
            job.frame_h = height, job.frame_w = width;
            job.crop = options_.crop;
            job.out = static_cast<uint8_t*>(masks_) + offset * plane;
            result[b].masks_ = job.out;
            be_.assemble_masks(job, stream_);
            offset += keep.size();
        }
    }

    void reserve_host(void*& ptr, size_t& capacity, size_t bytes) {
        if (ptr != nullptr && bytes <= capacity) return;
        if (ptr != nullptr) be_.host_free(ptr);
        ptr = nullptr;
        capacity = 0;
        ptr = be_.host_alloc(std::max<size_t>(bytes, 1));
        capacity = bytes;
    }

    void reserve_device(void*& ptr, size_t& capacity, size_t bytes) {
        if (ptr != nullptr && bytes <= capacity) return;
        if (ptr != nullptr) be_.device_free(ptr);
        ptr = nullptr;
        capacity = 0;
        ptr = be_.device_alloc(std::max<size_t>(bytes, 1));
        capacity = bytes;
    }

    void mark(int i) {
        if (options_.timing) be_.record(events_[i], stream_);
    }

    void load_plugins(std::string const& engine_path, EngineInfo const& info) {
        std::string lib = options_.plugin_library;
        if (lib.empty()) {
            std::vector<std::string> candidates;
            std::string dir = directory_of(engine_path);
            if (!info.plugin_library.empty()) candidates.push_back(dir + "/" + basename_of(info.plugin_library));
            candidates.push_back(dir + "/libtrtnet_plugins.so");
            if (char const* env = std::getenv("TRTNET_PLUGIN_LIBRARY")) {
                if (*env != '\0') candidates.push_back(env);
            }
            for (std::string const& c : candidates) {
                if (file_exists(c)) {
                    lib = c;
                    break;
                }
            }
            if (lib.empty()) lib = "libtrtnet_plugins.so";  // the dynamic loader's search path
        } else if (!file_exists(lib)) {
            throw Error(ErrorCode::kPluginLibrary, "plugin library " + lib + " (Options::plugin_library) not found");
        }
        // The registry is one per process, and loadLibrary "will fail and return nullptr if any
        // of the plugins are already registered" (IPluginRegistry::loadLibrary,
        // NvInferRuntimeCommon.h: TensorRT 10.3 line 205-206, 11.1 line 134-135). So a second
        // spelling of the path (another engine's folder, a symlink, Options::plugin_library and
        // then the default) must not load it again: skip when our creators are registered
        // (IPluginRegistry::getCreator, 10.3 line 254, 11.1 line 183).
        static std::mutex mutex;  // check-then-load is one step for every segmenter of the process
        std::lock_guard<std::mutex> lock(mutex);
        int present = 0;
        for (char const* name : kPluginNames) present += be_.has_plugin_creator(name, kPluginVersion, kPluginNamespace);
        if (present == int(std::size(kPluginNames))) return;
        if (present != 0) {
            throw Error(ErrorCode::kPluginLibrary,
                        "only some of trtnet's plugins (FastNMS, InverseWarp in namespace trtnet) are registered with "
                        "TensorRT: another library registered them; TensorRT refuses to load " + lib +
                            " over them (IPluginRegistry::loadLibrary); load one libtrtnet_plugins.so per process");
        }
        if (!be_.load_plugin_library(lib)) {
            throw Error(ErrorCode::kPluginLibrary,
                        "plugin library " + lib + " not found or not loadable (missing, built for another TensorRT, "
                        "or its dependencies are missing: see the TensorRT log above); put libtrtnet_plugins.so next "
                        "to the engine, or set TRTNET_PLUGIN_LIBRARY or Options::plugin_library");
        }
    }

    bool has_dcn_creator() {
        for (char const* version : kDcnVersions) {
            if (be_.has_plugin_creator(kDcnPlugin, version, kTensorRTPluginNamespace)) return true;
        }
        return false;
    }

    // Before deserializing an engine with TensorRT's ModulatedDeformConv2d layers (YOLACT++: the
    // sidecar's tensorrt_plugins lists it; for sidecars written before that field, the plan names
    // it, the rule trtnet/runtime/engine.py uses), its creator must be registered, or TensorRT
    // fails deep in its log. Registered already (Python's trt.init_libnvinfer_plugins, the
    // program itself, an earlier engine): nothing to do. Otherwise open libnvinfer_plugin.so.<the
    // running TensorRT's major> and call initLibNvInferPlugins, as trtexec does.
    void load_tensorrt_plugins(std::string const& path, EngineInfo& info, std::vector<char> const& blob) {
        auto& listed = info.tensorrt_plugins;
        if (std::find(listed.begin(), listed.end(), kDcnPlugin) == listed.end()) {
            std::string_view name(kDcnPlugin);
            if (std::search(blob.begin(), blob.end(), name.begin(), name.end()) == blob.end()) return;
            listed.push_back(kDcnPlugin);
        }
        static std::mutex mutex;  // check-then-initialise is one step for every segmenter of the process
        std::lock_guard<std::mutex> lock(mutex);
        if (has_dcn_creator()) return;
        std::string lib = "libnvinfer_plugin.so." + std::to_string(be_.library_version() / 10000);
        std::string what = path + " (config " + (info.config.empty() ? std::string("not recorded") : info.config) +
                           ") uses TensorRT's " + kDcnPlugin + " plugin (YOLACT++'s deformable convolutions)";
        std::string why;
        if (!be_.init_tensorrt_plugins(lib, why)) {
            throw Error(ErrorCode::kPluginLibrary,
                        what + ", and TensorRT's plugin library " + lib + " could not be loaded: " + why +
                            ". Install TensorRT's plugin library (the libnvinfer-plugin package; JetPack has it) "
                            "or add its folder to LD_LIBRARY_PATH");
        }
        if (!has_dcn_creator()) {
            throw Error(ErrorCode::kPluginLibrary,
                        what + ", and TensorRT's plugin library " + lib + " loaded but registered no " + kDcnPlugin +
                            " (version 2 or 1, namespace \"\"): it needs the libnvinfer_plugin of TensorRT 10.3+ "
                            "that matches this libnvinfer");
        }
    }

    std::shared_ptr<Backend> backend_;
    Backend& be_;
    Options options_;
    Stream stream_ = nullptr;
    bool own_stream_ = false;
    std::shared_ptr<MaskStore> store_;
    std::vector<std::unique_ptr<EngineRunner>> runners_;
    void* staging_ = nullptr;
    size_t staging_capacity_ = 0;
    bool staging_pending_ = false;
    void* readback_ = nullptr;
    size_t readback_capacity_ = 0;
    void* scratch_ = nullptr;
    size_t scratch_capacity_ = 0;
    void* masks_ = nullptr;
    size_t masks_capacity_ = 0;
    void* events_[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
};

// ---- Segmenter -----------------------------------------------------------------------

class Segmenter::Impl {
public:
    Impl(std::string const& path, Options const& options, std::shared_ptr<Backend> backend)
        : pipeline(std::move(backend), options), runner(pipeline.load(path, options.sidecar, info)) {
        if (info.role == "nonkeyframe" || runner.has_input(names::kKeyFpn1P4)) {
            throw Error(ErrorCode::kWrongRole, path + " is a non-keyframe engine (it takes the keyframe state): give "
                                                      "it to VideoSegmenter as the second engine, and a keyframe "
                                                      "engine to Segmenter");
        }
        std::vector<std::string> inputs = runner.names(true);
        if (inputs.size() != 1) {
            throw Error(ErrorCode::kWrongRole, path + " takes inputs other than '" + std::string(names::kInput) +
                                                   "': not a keyframe engine");
        }
    }

    std::vector<Instances> segment(std::vector<Frame> const& frames) {
        Shape shape = Pipeline::frame_shape(frames);
        runner.check_in_profile(names::kInput, shape);
        pipeline.begin();
        runner.configure({{names::kInput, shape}});
        pipeline.upload(frames, runner);
        pipeline.run(runner, nvtx::kKeyframeEngine);
        return pipeline.finish(runner, info, int(shape[1]), int(shape[2]), int(shape[0]));
    }

    EngineInfo info;
    Pipeline pipeline;
    EngineRunner& runner;
};

Segmenter::Segmenter(std::string const& engine_path, Options const& options, std::shared_ptr<Backend> backend)
    : impl_(std::make_unique<Impl>(engine_path, options, std::move(backend))) {}
Segmenter::~Segmenter() = default;
Segmenter::Segmenter(Segmenter&&) noexcept = default;
Segmenter& Segmenter::operator=(Segmenter&&) noexcept = default;

Instances Segmenter::segment(Frame const& frame) { return std::move(impl_->segment({frame}).front()); }
std::vector<Instances> Segmenter::segment(std::vector<Frame> const& frames) { return impl_->segment(frames); }
EngineInfo const& Segmenter::info() const { return impl_->info; }
StageTimes Segmenter::last_times() const { return impl_->pipeline.times(); }

// ---- VideoSegmenter ------------------------------------------------------------------

namespace {
struct StateLink {
    char const* exported;  // keyframe engine output
    char const* input;     // non-keyframe engine input
};
constexpr StateLink kState[] = {{names::kFpn1Lateral3, names::kKeyLateral3},
                                {names::kFpn1P4, names::kKeyFpn1P4},
                                {names::kFpn1P5, names::kKeyFpn1P5}};
}  // namespace

class VideoSegmenter::Impl {
public:
    Impl(std::string const& key_path, std::string const& nonkey_path, VideoOptions const& options,
         std::shared_ptr<Backend> backend)
        : interval(options.keyframe_interval),
          motion_threshold(options.motion_threshold),
          pipeline(std::move(backend), check_interval(options)),
          key(pipeline.load(key_path, options.sidecar, key_info)),
          nonkey(pipeline.load(nonkey_path, options.nonkeyframe_sidecar, nonkey_info)) {
        if (key_info.role == "nonkeyframe" || key.has_input(names::kKeyFpn1P4)) {
            throw Error(ErrorCode::kWrongRole, key_path + " is a non-keyframe engine, given as the keyframe engine "
                                                          "(first argument): are the two swapped?");
        }
        for (StateLink const& s : kState) {
            if (!key.has_output(s.exported)) {
                throw Error(ErrorCode::kWrongRole, "the keyframe engine " + key_path + " does not export the keyframe "
                                                   "state ('" + s.exported + "'): build it from a video config with "
                                                   "python -m trtnet.build");
            }
            if (!nonkey.has_input(s.input)) {
                throw Error(ErrorCode::kWrongRole, nonkey_path + " is not a non-keyframe engine (no input '" +
                                                       s.input + "'); build one with python -m trtnet.build --nonkeyframe");
            }
            if (key.type(s.exported) != nonkey.type(s.input)) {
                throw Error(ErrorCode::kWrongRole, std::string("the keyframe engine exports '") + s.exported + "' as " +
                                                       dtype_name(key.type(s.exported)) + ", the non-keyframe engine "
                                                       "takes it as " + dtype_name(nonkey.type(s.input)) +
                                                       ": build both from one precision plan");
            }
        }
        if (motion_threshold >= 0.f && !nonkey.has_output(names::kFlowMotion)) {
            throw Error(ErrorCode::kWrongRole, "adaptive keyframes need the " + std::string(names::kFlowMotion) +
                                                   " output, which " + nonkey_path + " lacks: rebuild it with this "
                                                   "trtnet (python -m trtnet.build --nonkeyframe)");
        }
        if (nonkey.names(true).size() != 1 + std::size(kState)) {
            throw Error(ErrorCode::kWrongRole, nonkey_path + " takes inputs beyond the frame and the keyframe state");
        }
        if (!key_info.config.empty() && !nonkey_info.config.empty() && key_info.config != nonkey_info.config) {
            throw Error(ErrorCode::kWrongRole, "the keyframe engine is of config " + key_info.config +
                                                   ", the non-keyframe engine of " + nonkey_info.config);
        }
    }

    static VideoOptions const& check_interval(VideoOptions const& options) {
        if (options.keyframe_interval < 1) {
            throw Error(ErrorCode::kUsage, "keyframe_interval must be >= 1, got " + std::to_string(options.keyframe_interval));
        }
        if (!std::isfinite(options.motion_threshold)) throw Error(ErrorCode::kUsage, "motion_threshold must be finite");
        return options;
    }

    std::vector<Instances> segment(std::vector<Frame> const& frames) {
        Shape shape = Pipeline::frame_shape(frames);
        // Forced keyframe: start, reset(), another frame size or batch; then every interval-th
        // frame (upstream's frame % k == 0), or after a non-keyframe that moved too far.
        bool keyframe = !have_state || shape != state_shape || since_keyframe >= interval ||
                        (motion_threshold >= 0.f && motion > motion_threshold);
        EngineRunner& runner = keyframe ? key : nonkey;
        runner.check_in_profile(names::kInput, shape);
        pipeline.begin();
        if (keyframe) {
            have_state = false;  // until this keyframe has run
            key.configure({{names::kInput, shape}});
        } else {
            std::map<std::string, Shape> shapes{{names::kInput, shape}};
            std::map<std::string, void*> bound;
            for (StateLink const& s : kState) {  // the keyframe's own output buffers, in place
                shapes[s.input] = key.shape(s.exported);
                bound[s.input] = key.buffer(s.exported);
            }
            nonkey.configure(shapes, bound);
        }
        pipeline.upload(frames, runner);
        pipeline.run(runner, keyframe ? nvtx::kKeyframeEngine : nvtx::kNonKeyframeEngine);
        if (keyframe) {
            have_state = true;
            state_shape = shape;
            since_keyframe = 0;
        }
        last_keyframe = keyframe;
        ++since_keyframe;
        ++since_reset;
        motion = -1.f;
        bool read_motion = !keyframe && nonkey.has_output(names::kFlowMotion);
        return pipeline.finish(runner, keyframe ? key_info : nonkey_info, int(shape[1]), int(shape[2]), int(shape[0]),
                               read_motion ? &motion : nullptr);
    }

    void reset() {
        have_state = false;
        since_keyframe = 0;
        since_reset = 0;
        last_keyframe = false;
        motion = -1.f;
    }

    int interval;
    float motion_threshold;
    EngineInfo key_info, nonkey_info;
    Pipeline pipeline;
    EngineRunner& key;
    EngineRunner& nonkey;
    bool have_state = false;
    Shape state_shape;
    int64_t since_keyframe = 0;
    int64_t since_reset = 0;
    bool last_keyframe = false;
    float motion = -1.f;
};

VideoSegmenter::VideoSegmenter(std::string const& keyframe_engine, std::string const& nonkeyframe_engine,
                               VideoOptions const& options, std::shared_ptr<Backend> backend)
    : impl_(std::make_unique<Impl>(keyframe_engine, nonkeyframe_engine, options, std::move(backend))) {}
VideoSegmenter::~VideoSegmenter() = default;
VideoSegmenter::VideoSegmenter(VideoSegmenter&&) noexcept = default;
VideoSegmenter& VideoSegmenter::operator=(VideoSegmenter&&) noexcept = default;

Instances VideoSegmenter::segment(Frame const& frame) { return std::move(impl_->segment({frame}).front()); }
std::vector<Instances> VideoSegmenter::segment(std::vector<Frame> const& frames) { return impl_->segment(frames); }
void VideoSegmenter::reset() { impl_->reset(); }
bool VideoSegmenter::last_was_keyframe() const { return impl_->last_keyframe; }
float VideoSegmenter::last_motion() const { return impl_->motion; }
int64_t VideoSegmenter::frames_since_reset() const { return impl_->since_reset; }
EngineInfo const& VideoSegmenter::keyframe_info() const { return impl_->key_info; }
EngineInfo const& VideoSegmenter::nonkeyframe_info() const { return impl_->nonkey_info; }
StageTimes VideoSegmenter::last_times() const { return impl_->pipeline.times(); }

}  // namespace trtnet
