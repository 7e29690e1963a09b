// A fake TensorRT + CUDA for the runtime's host-side tests: "device" memory is host memory
// the fake tracks (so a copy of the wrong kind, a free of something never allocated or a
// leak is caught), streams run each operation at once, graphs are closures over the
// engine's state at capture time, and the engines compute recognisable outputs from their
// inputs (which frame, which keyframe state), never a network.
//
// Engine files for the fake: >= 256 bytes starting with "FAKE <role> <options>" where role
// is key, videokey (exports the keyframe state) or nonkey; options: half (fp16 coeffs),
// batch=N (profile max batch), max_det=N, corrupt (deserialization fails), rescored (a
// YOLACT++ mask_scores output, fp32 as the network exports it), short_mask_scores (one too few).
// An engine file holding the bytes "ModulatedDeformConv2d" is a YOLACT++ plan: deserializing it
// needs that creator (libnvinfer_plugin's) in the registry, as TensorRT's does.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "backend.h"
#include "common/hd.h"

namespace fake {

using trtnet::Copy;
using trtnet::DType;
using trtnet::Shape;

constexpr int kMinSide = 8, kMaxSide = 1080;
constexpr int kProto = 8, kMaskDim = 4;

struct Log {
    std::vector<std::string> events;  // "alloc", "free", "h2d", "d2h", "d2d", "sync", "enqueue <role>", "capture <role>",
                                      // "launch <role>", "range <name>", "pop", "masks <count>", "warn ...",
                                      // "wait <event>", "event sync <event>", "record"
    // The stream operations again, per stream in submission order (a stream runs its work in
    // that order; across streams only an event wait orders anything).
    std::map<trtnet::Stream, std::vector<std::string>> streams;
    int count(std::string const& prefix) const {
        return int(std::count_if(events.begin(), events.end(),
                                 [&](std::string const& e) { return e.compare(0, prefix.size(), prefix) == 0; }));
    }
    bool enabled = true;  // false: nothing is recorded (frame_loop_bench; the counters still count)
    void add(std::string const& e) {
        if (enabled) events.push_back(e);
    }
    void on(trtnet::Stream stream, std::string const& e) {
        if (!enabled) return;
        events.push_back(e);
        streams[stream].push_back(e);
    }
    // Position of the first operation of `stream` starting with `prefix`, -1 if none.
    int position(trtnet::Stream stream, std::string const& prefix) const {
        auto it = streams.find(stream);
        if (it == streams.end()) return -1;
        for (size_t i = 0; i < it->second.size(); ++i) {
            if (it->second[i].compare(0, prefix.size(), prefix) == 0) return int(i);
        }
        return -1;
    }
    void clear() {
        events.clear();
        streams.clear();
    }
};

// A producer's stream (another thread's decoder, a CUDA preprocessing kernel): its work is
// deferred, it runs only when something waits for it -- an event recorded after it, waited
// on by another stream (wait_event) or by the host (synchronize_event), or a synchronize of
// the producer. So a frame read without waiting reads what was there before the producer ran.
class ProducerStream {
public:
    void submit(std::function<void()> work) { pending_.push_back(std::move(work)); }
    // An event: "all work captured" = what was submitted before the record.
    size_t record() const { return done_ + pending_.size(); }
    void run_until(size_t mark) {
        while (done_ < mark && !pending_.empty()) {
            pending_.front()();
            pending_.erase(pending_.begin());
            ++done_;
        }
    }
    size_t pending() const { return pending_.size(); }

private:
    std::vector<std::function<void()>> pending_;
    size_t done_ = 0;
};

class Memory {
public:
    ~Memory() {
        for (auto& kv : device_) std::free(kv.first);
        for (auto& kv : host_) std::free(kv.first);
    }
    void* alloc(size_t bytes, bool device) {
        void* p = std::calloc(bytes, 1);
        (device ? device_ : host_)[p] = bytes;
        return p;
    }
    void release(void* p, bool device) {
        auto& map = device ? device_ : host_;
        if (map.erase(p) != 1) throw std::logic_error(std::string("free of a pointer never allocated as ") + (device ? "device" : "pinned host") + " memory");
        std::free(p);
    }
    // Whether [p, p + bytes) lies inside one device allocation.
    bool is_device(void const* p, size_t bytes) const { return inside(device_, p, bytes); }
    bool is_pinned(void const* p, size_t bytes) const { return inside(host_, p, bytes); }
    size_t live_device() const { return device_.size(); }
    size_t live_host() const { return host_.size(); }

private:
    static bool inside(std::map<void*, size_t> const& m, void const* p, size_t bytes) {
        auto const* c = static_cast<char const*>(p);
        for (auto const& kv : m) {
            auto const* base = static_cast<char const*>(kv.first);
            if (c >= base && c + bytes <= base + kv.second) return true;
        }
        return false;
    }
    std::map<void*, size_t> device_, host_;
};

struct EngineSpec {
    std::string role = "key";  // key | videokey | nonkey
    bool half = false;   // fp16 detections and prototypes
    bool mixed = false;  // fp16 coeffs, fp32 boxes (Fast NMS never writes this)
    bool unsorted = false;  // scores ascending instead of best first
    bool motion = false;    // a non-keyframe engine with flow/motion (red of pixel (0,0) / 10)
    bool wild = false;      // det 0: corners swapped and outside [0, 1]; det 1: NaN score and box
    bool rescored = false;  // mask_scores: det i's is 0.05 + 0.1 i (ascending: never its box score)
    bool short_mask_scores = false;  // mask_scores of max_det - 1 values (a malformed engine)
    int max_batch = 1;
    int max_det = 8;
};

struct Tensor {
    trtnet::TensorDesc desc;
    Shape shape;
    void* address = nullptr;
};

class FakeEngine : public trtnet::EngineHandle {
public:
    FakeEngine(EngineSpec spec, Memory& memory, Log& log, bool const& capturing)
        : spec_(std::move(spec)), memory_(memory), log_(log), capturing_(capturing) {
        add("frame", true, DType::kUInt8, {-1, -1, -1, 3});
        if (spec_.role == "nonkey") {
            for (char const* n : {trtnet::names::kKeyLateral3, trtnet::names::kKeyFpn1P4, trtnet::names::kKeyFpn1P5}) {
                add(n, true, DType::kFloat, {-1, 4, -1, -1});
            }
        }
        add("det/count", false, DType::kInt32, {-1});
        DType det = spec_.half ? DType::kHalf : DType::kFloat;
        add("det/boxes", false, spec_.mixed ? DType::kFloat : det, {-1, spec_.max_det, 4});
        add("det/scores", false, det, {-1, spec_.max_det});
        add("det/classes", false, DType::kInt32, {-1, spec_.max_det});
        add("det/coeffs", false, spec_.mixed ? DType::kHalf : det, {-1, spec_.max_det, kMaskDim});
        add("proto", false, det, {-1, kProto, kProto, kMaskDim});
        if (spec_.role == "videokey") {
            for (char const* n : {trtnet::names::kFpn1Lateral3, trtnet::names::kFpn1P4, trtnet::names::kFpn1P5}) {
                add(n, false, DType::kFloat, {-1, 4, -1, -1});
            }
        }
        if (spec_.motion) add(trtnet::names::kFlowMotion, false, DType::kFloat, {-1});
        if (spec_.rescored || spec_.short_mask_scores) {
            add(trtnet::names::kMaskScores, false, DType::kFloat, {-1, spec_.max_det - (spec_.short_mask_scores ? 1 : 0)});
        }
    }

    std::vector<trtnet::TensorDesc> tensors() const override {
        std::vector<trtnet::TensorDesc> out;
        for (auto const& t : tensors_) out.push_back(t.desc);
        return out;
    }
    trtnet::Profile profile(std::string const& input) const override {
        if (input == "frame") return {{1, kMinSide, kMinSide, 3}, {1, 360, 640, 3}, {spec_.max_batch, kMaxSide, kMaxSide, 3}};
        return {{1, 4, 1, 1}, {1, 4, 23, 40}, {spec_.max_batch, 4, kMaxSide / 16 + 1, kMaxSide / 16 + 1}};
    }
    bool set_input_shape(std::string const& name, Shape const& shape) override {
        Tensor* t = find(name);
        if (t == nullptr || !t->desc.input || shape.size() != t->desc.declared.size()) return false;
        trtnet::Profile p = profile(name);
        for (size_t i = 0; i < shape.size(); ++i) {
            if (shape[i] < p.min[i] || shape[i] > p.max[i]) return false;  // TensorRT refuses outside the profile
        }
        t->shape = shape;
        return true;
    }
    Shape tensor_shape(std::string const& name) const override {
        Tensor const* t = find(name);
        if (t == nullptr) return {};
        if (t->desc.input) return t->shape.empty() ? t->desc.declared : t->shape;
        Shape const& f = find("frame")->shape;
        if (f.empty()) return t->desc.declared;
        Shape s = t->desc.declared;
        s[0] = f[0];
        if (s.size() == 4 && s[2] == -1) s[2] = state_side(f[1]), s[3] = state_side(f[2]);
        return s;
    }
    bool set_address(std::string const& name, void* device) override {
        Tensor* t = find(name);
        if (t == nullptr || device == nullptr) return false;
        t->address = device;
        return true;
    }
    bool enqueue(trtnet::Stream stream) override {
        if (fail_enqueue) return false;
        for (Tensor& t : tensors_) {
            Shape s = tensor_shape(t.desc.name);
            size_t bytes = size_t(trtnet::volume(s)) * trtnet::dtype_size(t.desc.type);
            if (t.address == nullptr || trtnet::volume(s) < 0 || !memory_.is_device(t.address, bytes)) return false;
        }
        if (spec_.role == "nonkey") {  // the state inputs must match the frame's shape, as in the network
            Shape want = {find("frame")->shape[0], 4, state_side(find("frame")->shape[1]), state_side(find("frame")->shape[2])};
            for (char const* n : {trtnet::names::kKeyLateral3, trtnet::names::kKeyFpn1P4, trtnet::names::kKeyFpn1P5}) {
                if (find(n)->shape != want) return false;
            }
        }
        if (capturing_) {
            log_.on(stream, "capture " + spec_.role);
            captured = snapshot();
            return true;
        }
        log_.on(stream, "enqueue " + spec_.role);
        compute(snapshot());
        return true;
    }

    // What a run needs: the shapes and addresses at enqueue (a graph keeps the capture's).
    struct Snapshot {
        std::map<std::string, std::pair<Shape, void*>> io;
    };
    Snapshot snapshot() const {
        Snapshot s;
        for (auto const& t : tensors_) s.io[t.desc.name] = {tensor_shape(t.desc.name), t.address};
        return s;
    }

    // Outputs: count = blue of pixel (0,0) % (max_det + 1); scores descending from 0.9 by 0.1
    // with ties broken by nothing (det i+1 <= det i); classes: the frame's tag (green of pixel
    // (0,0)) on keyframes, the keyframe state's tag + 100 on non-keyframes; boxes: det i covers
    // [0.1 i, 0.1 i + 0.5] x [0, 0.5]; the state outputs hold the frame's tag.
    void compute(Snapshot const& s) const {
        ++runs;
        auto io = [&](char const* n) { return s.io.at(n); };
        Shape frame = io("frame").first;
        int64_t batch = frame[0], h = frame[1], w = frame[2];
        auto const* pixels = static_cast<uint8_t const*>(io("frame").second);
        for (int64_t b = 0; b < batch; ++b) {
            uint8_t const* f = pixels + b * h * w * 3;
            int tag = f[1];
            if (spec_.role == "nonkey") {
                auto const* state = static_cast<float const*>(io(trtnet::names::kKeyFpn1P4).second);
                int64_t plane = trtnet::volume(io(trtnet::names::kKeyFpn1P4).first) / batch;
                tag = 100 + int(state[b * plane]);
            }
            int count = f[0] % (spec_.max_det + 1);
            if (spec_.motion) static_cast<float*>(io(trtnet::names::kFlowMotion).second)[b] = float(f[2]) / 10.f;
            static_cast<int32_t*>(io("det/count").second)[b] = count;
            for (int i = 0; i < spec_.max_det; ++i) {
                size_t k = size_t(b) * size_t(spec_.max_det) + size_t(i);
                float score = spec_.unsorted ? 0.1f + 0.1f * float(i) : 0.9f - 0.1f * float(i);
                static_cast<int32_t*>(io("det/classes").second)[k] = tag;
                float box[4] = {0.1f * float(i), 0.f, 0.1f * float(i) + 0.5f, 0.5f};
                if (spec_.wild && i == 0) box[0] = 1.25f, box[1] = 0.75f, box[2] = -0.5f, box[3] = 0.3f;
                if (spec_.wild && i == 1) score = box[0] = box[1] = box[2] = box[3] = std::nanf("");
                put(io("det/scores").second, spec_.half, k, score);
                if (spec_.rescored) static_cast<float*>(io(trtnet::names::kMaskScores).second)[k] = 0.05f + 0.1f * float(i);
                for (int c = 0; c < 4; ++c) put(io("det/boxes").second, spec_.half, k * 4 + size_t(c), box[c]);
            }
            if (spec_.role == "videokey") {
                for (char const* n : {trtnet::names::kFpn1Lateral3, trtnet::names::kFpn1P4, trtnet::names::kFpn1P5}) {
                    int64_t plane = trtnet::volume(io(n).first) / batch;
                    float* out = static_cast<float*>(io(n).second) + b * plane;
                    std::fill(out, out + plane, float(tag));
                }
            }
        }
    }

    EngineSpec spec_;
    bool fail_enqueue = false;
    mutable int runs = 0;
    Snapshot captured;

private:
    static void put(void* base, bool half, size_t i, float v) {
        if (half) static_cast<trtnet::half_t*>(base)[i] = trtnet::float_to_half(v);
        else static_cast<float*>(base)[i] = v;
    }
    static int64_t state_side(int64_t pixels) { return (pixels + 15) / 16; }
    void add(std::string name, bool input, DType type, Shape declared) {
        tensors_.push_back(Tensor{trtnet::TensorDesc{std::move(name), input, type, std::move(declared)}, {}, nullptr});
    }
    Tensor* find(std::string const& name) {
        for (auto& t : tensors_) {
            if (t.desc.name == name) return &t;
        }
        return nullptr;
    }
    Tensor const* find(std::string const& name) const { return const_cast<FakeEngine*>(this)->find(name); }

    std::vector<Tensor> tensors_;
    Memory& memory_;
    Log& log_;
    bool const& capturing_;
};

class FakeBackend : public trtnet::Backend {
public:
    ~FakeBackend() override = default;

    // -- knobs -----------------------------------------------------------------------
    int32_t version = 100300;
    std::string cc = "8.7";
    bool fail_capture = false;
    bool touch_data = true;        // false: uploads move one row, masks are not painted (frame_loop_bench: the runtime's cost)
    bool record_mask_jobs = true;  // false: mask_jobs stays empty (a long bench run)
    std::vector<FakeEngine*> engines;  // owned by the runners
    std::vector<trtnet::MaskJob> mask_jobs;
    std::vector<std::string> plugins_loaded;         // every library loadLibrary accepted, in order
    std::set<std::string> registered;                // "name/version/namespace" in the process's registry
    int load_attempts = 0;
    // TensorRT's own plugin library as dlopen + initLibNvInferPlugins find it: missing (dlopen
    // fails), its init failing, or registering `nvinfer_plugin_creators` (10.3's registers
    // ModulatedDeformConv2d version "1"; 11.x's "2" and "1").
    bool nvinfer_plugin_present = true;
    bool nvinfer_plugin_init_ok = true;
    std::vector<std::string> nvinfer_plugin_creators = {"ModulatedDeformConv2d/1/"};
    std::vector<std::string> nvinfer_plugin_opened;  // every library init_tensorrt_plugins was asked to open
    // Always counted, logging or not: cudaMalloc / cudaMallocHost calls, host waits (stream or event).
    int64_t device_allocs = 0, host_allocs = 0, host_waits = 0;
    Log log;
    Memory memory;
    int ranges_open = 0;

    // -- TensorRT --------------------------------------------------------------------
    int32_t library_version() override { return version; }
    std::string compute_capability() override { return cc; }
    bool has_plugin_creator(char const* name, char const* version, char const* ns) override {
        return registered.count(std::string(name) + "/" + version + "/" + ns) == 1;
    }
    // As IPluginRegistry::loadLibrary: nullptr (false) "if any of the plugins are already
    // registered" (NvInferRuntimeCommon.h, 10.3 line 205-206): whatever the path's spelling.
    bool load_plugin_library(std::string const& path) override {
        ++load_attempts;
        log.add("loadLibrary " + path);
        if (!std::ifstream(path).good()) return false;
        static char const* const creators[] = {"FastNMS/1/trtnet", "InverseWarp/1/trtnet"};
        for (char const* c : creators) {
            if (registered.count(c) != 0) return false;
        }
        for (char const* c : creators) registered.insert(c);
        plugins_loaded.push_back(path);
        return true;
    }
    bool init_tensorrt_plugins(std::string const& library, std::string& why) override {
        nvinfer_plugin_opened.push_back(library);
        log.add("initLibNvInferPlugins " + library);
        if (!nvinfer_plugin_present) {
            why = library + ": cannot open shared object file: No such file or directory";  // dlerror()'s text
            return false;
        }
        if (!nvinfer_plugin_init_ok) {
            why = "initLibNvInferPlugins returned false";
            return false;
        }
        for (std::string const& c : nvinfer_plugin_creators) registered.insert(c);
        return true;
    }
    std::unique_ptr<trtnet::EngineHandle> deserialize(std::vector<char> const& blob) override {
        if (registered.empty()) throw std::logic_error("engine deserialized before the plugin library was loaded");
        std::string text(blob.begin(), blob.end());
        if (text.find("ModulatedDeformConv2d") != std::string::npos && registered.count("ModulatedDeformConv2d/1/") == 0 &&
            registered.count("ModulatedDeformConv2d/2/") == 0) {
            throw std::logic_error("a ModulatedDeformConv2d engine deserialized before libnvinfer_plugin registered it");
        }
        std::istringstream in(text.substr(0, text.find('\n')));
        std::string magic, word;
        EngineSpec spec;
        in >> magic >> spec.role;
        if (magic != "FAKE") return nullptr;
        while (in >> word) {
            if (word == "corrupt") return nullptr;
            if (word == "half") spec.half = true;
            if (word == "mixed") spec.mixed = true;
            if (word == "unsorted") spec.unsorted = true;
            if (word == "motion") spec.motion = true;
            if (word == "wild") spec.wild = true;
            if (word == "rescored") spec.rescored = true;
            if (word == "short_mask_scores") spec.short_mask_scores = true;
            if (word.rfind("batch=", 0) == 0) spec.max_batch = std::stoi(word.substr(6));
            if (word.rfind("max_det=", 0) == 0) spec.max_det = std::stoi(word.substr(8));
        }
        auto engine = std::make_unique<FakeEngine>(spec, memory, log, capturing_);
        engines.push_back(engine.get());
        return engine;
    }
    void warn(std::string const& message) override { log.add("warn " + message); }

    // -- CUDA ------------------------------------------------------------------------
    trtnet::Stream create_stream() override { return reinterpret_cast<trtnet::Stream>(&stream_token_); }
    // A producer's stream and its events, for Frame::ready (tests own them; the runtime never creates them).
    trtnet::Stream producer_stream() { return reinterpret_cast<trtnet::Stream>(&producer_); }
    ProducerStream& producer() { return producer_; }
    CUevent_st* producer_event() {  // cudaEventRecord on the producer's stream
        events_.push_back(std::make_unique<size_t>(producer_.record()));
        log.on(producer_stream(), "record producer event");
        return reinterpret_cast<CUevent_st*>(events_.back().get());
    }
    void wait_event(CUevent_st* event, trtnet::Stream stream) override {
        if (capturing_) throw std::logic_error("event wait during a graph capture");
        producer_.run_until(mark(event));  // the device-side wait: the producer's work is done first
        log.on(stream, "wait producer event");
    }
    void synchronize_event(CUevent_st* event) override {
        ++host_waits;
        producer_.run_until(mark(event));
        log.add("event sync");
    }
    void destroy_stream(trtnet::Stream s) override {
        if (s != create_stream()) throw std::logic_error("destroyed a stream never created");
        streams_destroyed++;
    }
    void* device_alloc(size_t bytes) override {
        ++device_allocs;
        log.add("alloc " + std::to_string(bytes));
        return memory.alloc(bytes, true);
    }
    void device_free(void* p) override {
        log.add("free");
        memory.release(p, true);
    }
    void* host_alloc(size_t bytes) override {
        ++host_allocs;
        return memory.alloc(bytes, false);
    }
    void host_free(void* p) override { memory.release(p, false); }
    void copy_2d(void* dst, size_t dpitch, void const* src, size_t spitch, size_t width, size_t rows, Copy kind,
                 trtnet::Stream stream) override {
        if (capturing_) throw std::logic_error("copy during a graph capture");
        if (width > dpitch || width > spitch) throw std::logic_error("copy_2d: width beyond the pitch");
        size_t dbytes = dpitch * (rows - 1) + width, sbytes = spitch * (rows - 1) + width;
        bool dst_dev = memory.is_device(dst, dbytes), src_dev = memory.is_device(src, sbytes);
        bool ok = kind == Copy::kHostToDevice   ? dst_dev && !src_dev
                  : kind == Copy::kDeviceToHost ? !dst_dev && src_dev
                                                : dst_dev && src_dev;
        if (!ok) throw std::logic_error("copy_2d of the wrong kind for its pointers");
        char const* names[] = {"h2d", "d2h", "d2d"};
        std::string e = names[int(kind)];
        if (kind == Copy::kHostToDevice && memory.is_pinned(src, sbytes)) e += " pinned";
        log.on(stream, e);
        if (!touch_data && kind != Copy::kDeviceToHost) rows = 1;  // pixel (0,0) drives the fake engine
        for (size_t r = 0; r < rows; ++r) {
            std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<char const*>(src) + r * spitch, width);
        }
    }
    void synchronize(trtnet::Stream stream) override {
        ++host_waits;
        log.on(stream, "sync");
    }
    void* create_event() override { return memory.alloc(1, false); }
    void destroy_event(void* e) override { memory.release(e, false); }
    void record(void*, trtnet::Stream stream) override { log.on(stream, "record"); }
    float elapsed_ms(void*, void*) override { return 1.f; }

    bool begin_capture(trtnet::Stream) override {
        if (fail_capture) return false;
        capturing_ = true;
        return true;
    }
    void* end_capture(trtnet::Stream) override {
        capturing_ = false;
        for (FakeEngine* e : engines) {
            if (!e->captured.io.empty()) {
                graphs_.push_back(std::make_unique<Graph>(Graph{e, e->captured}));
                e->captured = {};
                return graphs_.back().get();
            }
        }
        return nullptr;
    }
    void launch_graph(void* graph, trtnet::Stream stream) override {
        auto* g = static_cast<Graph*>(graph);
        if (!live(g)) throw std::logic_error("launch of a destroyed graph");
        log.on(stream, "launch " + g->engine->spec_.role);
        g->engine->compute(g->snapshot);  // replays the capture's shapes and addresses, stale or not
    }
    void destroy_graph(void* graph) override {
        auto* g = static_cast<Graph*>(graph);
        if (!live(g)) throw std::logic_error("destroy of a destroyed graph");
        graphs_.erase(std::find_if(graphs_.begin(), graphs_.end(), [&](auto const& p) { return p.get() == g; }));
        log.add("graph destroyed");
    }
    size_t live_graphs() const { return graphs_.size(); }

    void range_push(char const* name) override {
        ++ranges_open;
        if (log.enabled) log.add(std::string("range ") + name);
    }
    void range_pop() override {
        if (--ranges_open < 0) throw std::logic_error("range_pop without a push");
        log.add("pop");
    }

    // Masks: 1 inside the detection's pixel box (the real assembly is csrc/masks' job).
    void assemble_masks(trtnet::MaskJob const& job, trtnet::Stream stream) override {
        size_t row = trtnet::dtype_size(job.det_type);
        if (!memory.is_device(job.boxes, size_t(job.count) * 4 * row) ||
            !memory.is_device(job.coeffs, size_t(job.count) * size_t(job.mask_dim) * row) ||
            !memory.is_device(job.out, size_t(job.count) * size_t(job.frame_h) * size_t(job.frame_w))) {
            throw std::logic_error("mask job with host pointers");
        }
        if (record_mask_jobs) mask_jobs.push_back(job);
        log.on(stream, "masks " + std::to_string(job.count));
        if (!touch_data) return;
        for (int d = 0; d < job.count; ++d) {
            float box[4];
            for (int c = 0; c < 4; ++c) {
                size_t i = size_t(d) * 4 + size_t(c);
                box[c] = job.det_type == DType::kHalf ? trtnet::half_to_float(static_cast<trtnet::half_t const*>(job.boxes)[i])
                                                      : static_cast<float const*>(job.boxes)[i];
            }
            uint8_t* plane = job.out + size_t(d) * size_t(job.frame_h) * size_t(job.frame_w);
            for (int y = 0; y < job.frame_h; ++y) {
                for (int x = 0; x < job.frame_w; ++x) {
                    bool in = x >= box[0] * float(job.frame_w) && x < box[2] * float(job.frame_w) &&
                              y >= box[1] * float(job.frame_h) && y < box[3] * float(job.frame_h);
                    plane[size_t(y) * size_t(job.frame_w) + size_t(x)] = uint8_t(in);
                }
            }
        }
    }

    int streams_destroyed = 0;

private:
    struct Graph {
        FakeEngine* engine;
        FakeEngine::Snapshot snapshot;
    };
    bool live(Graph* g) const {
        return std::any_of(graphs_.begin(), graphs_.end(), [&](auto const& p) { return p.get() == g; });
    }
    size_t mark(CUevent_st* event) const {
        for (auto const& e : events_) {
            if (reinterpret_cast<CUevent_st*>(e.get()) == event) return *e;
        }
        throw std::logic_error("wait on an event never recorded");
    }
    int stream_token_ = 0;
    ProducerStream producer_;
    std::vector<std::unique_ptr<size_t>> events_;
    bool capturing_ = false;
    std::vector<std::unique_ptr<Graph>> graphs_;
};

}  // namespace fake
