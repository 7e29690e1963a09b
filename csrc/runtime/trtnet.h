// trtnet C++ runtime: BGR frames in, instance masks out, with a keyframe engine
// (Segmenter) or a keyframe + non-keyframe engine pair (VideoSegmenter, YolactEdge's
// video mode). No CUDA or TensorRT header is needed to use it; link trtnet::runtime.
//
//   trtnet::Segmenter seg("model.engine");            // reads model.engine.json too
//   trtnet::Instances found = seg.segment(trtnet::Frame::host(mat.data, mat.cols, mat.rows, mat.step));
//   for (auto const& d : found) printf("%s %.2f (mask %.2f)\n", d.class_name.c_str(), d.score, d.mask_score);
//   std::vector<uint8_t> masks = found.masks_to_host();   // [size, height, width] of 0/1
//
// Every failure is a trtnet::Error whose message names the problem and whose code() says
// which kind it is. A segmenter is used from one thread at a time (one per camera thread, or
// one batch for several cameras). Tensor and NVTX names are the Python runtime's (trtnet/names.py; a test
// checks they match).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

struct CUstream_st;  // cudaStream_t is CUstream_st* (cuda_runtime_api.h / driver_types.h)
struct CUevent_st;   // cudaEvent_t is CUevent_st* (driver_types.h)

namespace trtnet {

namespace names {  // trtnet/names.py
constexpr char const* kInput = "frame";             // uint8 [B, H, W, 3] BGR
constexpr char const* kProto = "proto";             // [B, 138, 138, mask_dim]
constexpr char const* kDetCount = "det/count";      // int32 [B]
constexpr char const* kDetBoxes = "det/boxes";      // [B, max_det, 4] x1, y1, x2, y2 relative
constexpr char const* kDetScores = "det/scores";    // [B, max_det]
constexpr char const* kDetClasses = "det/classes";  // int32 [B, max_det], 0-based foreground
constexpr char const* kDetCoeffs = "det/coeffs";    // [B, max_det, mask_dim]
// YOLACT++ (mask re-scoring in the engine): det/scores x maskiou_net's IoU at det/classes.
constexpr char const* kMaskScores = "mask_scores";  // [B, max_det]
// Keyframe state: exported by a video keyframe engine, taken by the non-keyframe engine.
constexpr char const* kFpn1Lateral3 = "fpn_phase_1/lateral3";
constexpr char const* kFpn1P4 = "fpn_phase_1/P4";
constexpr char const* kFpn1P5 = "fpn_phase_1/P5";
constexpr char const* kKeyLateral3 = "key/fpn_phase_1/lateral3";
constexpr char const* kKeyFpn1P4 = "key/fpn_phase_1/P4";
constexpr char const* kKeyFpn1P5 = "key/fpn_phase_1/P5";
constexpr char const* kFlowMotion = "flow/motion";  // float32 [B]: non-keyframe's motion from its keyframe
}  // namespace names

namespace nvtx {  // NVTX v3 ranges: the Python runtime's (trtnet/runtime/profiling.py)
constexpr char const* kDomain = "trtnet";                       // DOMAIN
constexpr char const* kUpload = "upload";                       // UPLOAD: frame rows -> the engine's input
constexpr char const* kKeyframeEngine = "engine keyframe";      // KEYFRAME_ENGINE
constexpr char const* kNonKeyframeEngine = "engine nonkeyframe";  // NONKEYFRAME_ENGINE
constexpr char const* kMasks = "masks";                         // MASKS
constexpr char const* kPostprocess = "postprocess";             // POSTPROCESS: detections to the host
}  // namespace nvtx

// What went wrong, for callers that react differently (e.g. rebuild the engine on kVersion).
enum class ErrorCode {
    kEngineFile,     // missing, unreadable, truncated or not an engine
    kSidecar,        // the engine's JSON sidecar is missing or malformed
    kWrongRole,      // e.g. a non-keyframe engine given as a keyframe engine
    kVersion,        // engine built by another TensorRT version
    kDevice,         // engine built for another GPU; no GPU
    kPluginLibrary,  // libtrtnet_plugins.so, or TensorRT's libnvinfer_plugin an engine needs, missing or not loadable
    kFrame,          // a frame that is not a valid BGR8 image description
    kFrameSize,      // frame (or batch) outside the engine's optimization profile
    kStaleMasks,     // masks of an Instances read after the segmenter's next call
    kCuda,           // a CUDA call failed
    kTensorRT,       // TensorRT refused a call (shape, address, enqueue)
    kUsage,          // a bad option value
};

class Error : public std::runtime_error {
public:
    Error(ErrorCode code, std::string const& message) : std::runtime_error("trtnet: " + message), code_(code) {}
    ErrorCode code() const noexcept { return code_; }

private:
    ErrorCode code_;
};

// One BGR8 image: rows of width*3 bytes, `pitch` bytes apart (a cv::Mat's step works
// unchanged; 0 means width*3). In host memory (any, pinned or not) or in device memory.
//
// `ready`: a cudaEvent_t the producer recorded (cudaEventRecord) on its own stream after
// writing the frame. The segmenter's stream is created cudaStreamNonBlocking, so nothing
// orders it after other streams' work: with `ready` the segmenter's stream waits on the event
// (cudaStreamWaitEvent, on the device) before reading a device frame, and the host waits on it
// (cudaEventSynchronize) before reading a host frame filled by an async copy. nullptr: the
// frame is complete now (written by the host, or by work already synchronised). The event
// must stay valid until segment() returns.
struct Frame {
    enum class Memory { kHost, kDevice };
    void const* data = nullptr;
    int width = 0;
    int height = 0;
    size_t pitch = 0;
    Memory memory = Memory::kHost;
    CUevent_st* ready = nullptr;

    static Frame host(void const* data, int width, int height, size_t pitch = 0, CUevent_st* ready = nullptr) {
        return Frame{data, width, height, pitch, Memory::kHost, ready};
    }
    static Frame device(void const* data, int width, int height, size_t pitch = 0, CUevent_st* ready = nullptr) {
        return Frame{data, width, height, pitch, Memory::kDevice, ready};
    }
    size_t row_pitch() const { return pitch != 0 ? pitch : size_t(width) * 3; }
};

// Box in pixels like upstream's postprocess: x1 <= x2 in [0, width], y1 <= y2 in [0, height].
struct Box {
    int64_t x1 = 0, y1 = 0, x2 = 0, y2 = 0;
};

struct Instance {
    int class_id = 0;        // 0-based foreground class (the sidecar's classes[class_id])
    std::string class_name;  // "" when the sidecar lists no name for it
    float score = 0.f;       // box score (det/scores)
    // Mask score: a YOLACT++ engine's mask_scores output (box score x the predicted mask IoU,
    // upstream's rescore_mask; what its COCO eval and display use for masks); engines without
    // mask re-scoring: the box score.
    float mask_score = 0.f;
    Box box;
};

class MaskStore;

// Detections of one frame (host) and their binary masks (device, [size, height, width]
// bytes of 0/1). The masks live in the segmenter's buffer until its next call: copy them
// (masks_to_host) or use them before; reading them later is an Error (kStaleMasks).
class Instances {
public:
    Instances() = default;
    size_t size() const { return detections_.size(); }
    bool empty() const { return detections_.empty(); }
    Instance const& operator[](size_t i) const { return detections_.at(i); }
    std::vector<Instance>::const_iterator begin() const { return detections_.begin(); }
    std::vector<Instance>::const_iterator end() const { return detections_.end(); }
    int height() const { return height_; }
    int width() const { return width_; }

    // Device pointer to the masks, [size(), height(), width()] uint8 0/1 (nullptr when empty).
    uint8_t const* device_masks() const;
    // Copies the masks to the host (waits for them): [size(), height(), width()] of 0/1.
    std::vector<uint8_t> masks_to_host() const;
    void masks_to_host(uint8_t* dst) const;  // dst holds size() * height() * width() bytes

private:
    friend class Pipeline;
    std::vector<Instance> detections_;
    int height_ = 0, width_ = 0;
    uint8_t* masks_ = nullptr;
    uint64_t generation_ = 0;
    std::shared_ptr<MaskStore> store_;
};

// Milliseconds per stage of the last call, measured with CUDA events (Options::timing).
struct StageTimes {
    float upload = 0.f, network = 0.f, postprocess = 0.f, masks = 0.f;
};

struct Options {
    float score_threshold = 0.f;  // keep detections with score > threshold (0: keep all, like upstream)
    int top_k = 0;                // at most this many per frame, best first (0: no limit)
    bool crop = true;             // crop masks by their box (upstream's default)
    bool cuda_graphs = true;      // capture each engine's enqueue per input shape after a warm-up
    bool timing = false;          // record CUDA events per stage (see last_times)
    std::string plugin_library;   // "" = sidecar's name next to the engine, $TRTNET_PLUGIN_LIBRARY, then the loader
    std::string sidecar;          // "" = ENGINE + ".json"
    CUstream_st* stream = nullptr;  // run on this stream (nullptr: the segmenter creates one)
};

struct VideoOptions : Options {
    int keyframe_interval = 5;  // the first of every N frames is a keyframe (upstream every_k_frames)
    // Adaptive keyframes (trtnet/runtime/video.py): >= 0 makes the frame after a non-keyframe
    // whose flow/motion is above it a keyframe; keyframe_interval is then the longest run.
    float motion_threshold = -1.f;
    std::string nonkeyframe_sidecar;  // "" = NONKEYFRAME_ENGINE + ".json"
};

// What the sidecar says about an engine (engine path + ".json", written by trtnet.build).
struct EngineInfo {
    std::string path;
    std::string config;            // e.g. "yolact_edge_mobilenetv2_config"
    std::string role;              // "keyframe" or "nonkeyframe" (sidecar "network"; "" if not said)
    std::string tensorrt_version;  // e.g. "10.3.0.26" ("unknown" if the builder could not tell)
    std::string gpu;               // compute capability, e.g. "8.7" ("" if not recorded)
    std::string plugin_library;    // path of the plugin library it was built with ("" if not recorded)
    // TensorRT's own plugins (libnvinfer_plugin) its layers use: sidecar "tensorrt_plugins", plus
    // "ModulatedDeformConv2d" when the plan names it (YOLACT++; sidecars written before the field)
    std::vector<std::string> tensorrt_plugins;
    std::vector<std::string> classes;
    int64_t engine_bytes = -1;             // size of the engine the sidecar was written for (-1: not recorded)
    std::vector<std::string> io;           // its I/O tensor names (empty: not recorded)
    int max_batch = 1;                        // from the optimization profile
    int min_height = 0, min_width = 0;        // frame limits of the profile
    int max_height = 0, max_width = 0;
};

class Backend;  // the TensorRT + CUDA seam (backend.h); tests pass a fake

class Segmenter {
public:
    explicit Segmenter(std::string const& engine_path, Options const& options = {});
    Segmenter(std::string const& engine_path, Options const& options, std::shared_ptr<Backend> backend);
    ~Segmenter();
    Segmenter(Segmenter&&) noexcept;
    Segmenter& operator=(Segmenter&&) noexcept;

    Instances segment(Frame const& frame);
    // Frames of one size from several cameras in one engine run (batch <= engine's max_batch).
    std::vector<Instances> segment(std::vector<Frame> const& frames);

    EngineInfo const& info() const;
    StageTimes last_times() const;  // waits for the last call's work (Options::timing)

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

class VideoSegmenter {
public:
    VideoSegmenter(std::string const& keyframe_engine, std::string const& nonkeyframe_engine,
                   VideoOptions const& options = {});
    VideoSegmenter(std::string const& keyframe_engine, std::string const& nonkeyframe_engine,
                   VideoOptions const& options, std::shared_ptr<Backend> backend);
    ~VideoSegmenter();
    VideoSegmenter(VideoSegmenter&&) noexcept;
    VideoSegmenter& operator=(VideoSegmenter&&) noexcept;

    // The next frame of the video (or the next frames of several cameras, in step).
    Instances segment(Frame const& frame);
    std::vector<Instances> segment(std::vector<Frame> const& frames);
    // Forget the keyframe (a cut, a new video): the next frame is a keyframe.
    void reset();

    bool last_was_keyframe() const;
    float last_motion() const;  // flow/motion of the last frame (max over a batch); -1 after a keyframe
    int64_t frames_since_reset() const;
    EngineInfo const& keyframe_info() const;
    EngineInfo const& nonkeyframe_info() const;
    StageTimes last_times() const;

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace trtnet
