// Host-side tests of the C++ runtime's logic against the fake backend (fake_backend.h):
// schedule, state handoff, shape changes, buffers, CUDA graphs, postprocess, errors.
// Built with ASan + UBSan by tests/test_runtime_cpp.py; `runtime_test NAME` runs one test,
// `runtime_test --list` lists them.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "fake_backend.h"
#include "sidecar.h"
#include "trtnet.h"

namespace {

using trtnet::ErrorCode;
using trtnet::Frame;

struct Failure {
    std::string what;
};

#define CHECK(cond)                                                                                    \
    do {                                                                                               \
        if (!(cond)) throw Failure{std::string(__FILE__ ":") + std::to_string(__LINE__) + ": " #cond}; \
    } while (0)
#define CHECK_EQ(a, b)                                                                                              \
    do {                                                                                                            \
        auto va_ = (a);                                                                                             \
        auto vb_ = (b);                                                                                             \
        if (!(va_ == vb_)) {                                                                                        \
            std::ostringstream m_;                                                                                  \
            m_ << __FILE__ ":" << __LINE__ << ": " #a " == " #b " (" << va_ << " vs " << vb_ << ")";               \
            throw Failure{m_.str()};                                                                                \
        }                                                                                                           \
    } while (0)

// Runs `body`, which must throw trtnet::Error of `code` whose message contains `text`.
void expect_error(ErrorCode code, std::string const& text, std::function<void()> const& body, int line) {
    try {
        body();
    } catch (trtnet::Error const& e) {
        if (e.code() != code || std::string(e.what()).find(text) == std::string::npos) {
            throw Failure{"line " + std::to_string(line) + ": wrong error (code " + std::to_string(int(e.code())) +
                          "): " + e.what()};
        }
        return;
    }
    throw Failure{"line " + std::to_string(line) + ": no error thrown, expected one with '" + text + "'"};
}
#define CHECK_ERROR(code, text, ...) expect_error(ErrorCode::code, text, [&] { __VA_ARGS__; }, __LINE__)

std::vector<std::pair<std::string, std::function<void()>>>& registry() {
    static std::vector<std::pair<std::string, std::function<void()>>> tests;
    return tests;
}
struct Register {
    Register(char const* name, std::function<void()> f) { registry().emplace_back(name, std::move(f)); }
};
#define TEST(name)                                  \
    void name();                                    \
    Register register_##name(#name, name);          \
    void name()

// A temporary folder with fake engines, sidecars and a plugin library file.
struct Workspace {
    std::string dir;
    Workspace() {
        char tmpl[] = "/tmp/trtnet_runtime_test_XXXXXX";
        dir = mkdtemp(tmpl);
        write("libtrtnet_plugins.so", "not really a library");
    }
    ~Workspace() { std::system(("rm -rf '" + dir + "'").c_str()); }
    std::string write(std::string const& name, std::string const& text) {
        std::string path = dir + "/" + name;
        std::ofstream(path, std::ios::binary) << text;
        return path;
    }
    // An engine file of the fake ("FAKE role options"), padded to a plausible size, plus its sidecar.
    std::string engine(std::string const& name, std::string const& header, std::string const& sidecar_role = "",
                       std::string const& extra_json = "") {
        std::string body = "FAKE " + header + "\n" + std::string(300, '\0');
        std::string path = write(name, body);
        // trtnet/builder/sidecar.py's layout (describe())
        std::string json = "{\"format\": \"trtnet-engine-sidecar/1\", \"config\": \"yolact_edge_mobilenetv2_config\", "
                           "\"tensorrt_version\": \"10.3.0.26\", \"plugin_library\": null, "
                           "\"gpu\": {\"name\": \"Orin\", \"compute_capability\": \"8.7\", \"memory_mib\": 7620}, "
                           "\"classes\": [\"person\", \"bicycle\", \"car\"]";
        if (!sidecar_role.empty()) json += ", \"network\": \"" + sidecar_role + "\"";
        json += extra_json + "}";
        write(name + ".json", json);
        return path;
    }
};

// A BGR frame whose pixel (0,0) encodes what the fake engine outputs: blue = detection count,
// green = the frame's tag. `pad` extra bytes per row test the row pitch.
struct Image {
    int width, height, pad;
    std::vector<uint8_t> bytes;
    Image(int w, int h, int count, int tag, int pad_ = 0) : width(w), height(h), pad(pad_) {
        bytes.assign(size_t(h) * (size_t(w) * 3 + size_t(pad)), 0xEE);  // padding bytes are 0xEE
        for (int y = 0; y < h; ++y) {
            for (int x = 0; x < w * 3; ++x) bytes[size_t(y) * pitch() + size_t(x)] = uint8_t((x + y) % 251);
        }
        bytes[0] = uint8_t(count);
        bytes[1] = uint8_t(tag);
    }
    size_t pitch() const { return size_t(width) * 3 + size_t(pad); }
    Frame frame() const { return Frame::host(bytes.data(), width, height, pad ? pitch() : 0); }
};

std::shared_ptr<fake::FakeBackend> backend() { return std::make_shared<fake::FakeBackend>(); }

trtnet::Options opts(std::string const& plugin = "") {
    trtnet::Options o;
    o.plugin_library = plugin;
    return o;
}

trtnet::VideoOptions video_opts(int interval = 5) {
    trtnet::VideoOptions o;
    o.keyframe_interval = interval;
    return o;
}

// ---- schedule and keyframe state --------------------------------------------------------

TEST(first_of_every_five_frames_is_a_keyframe) {
    Workspace ws;
    auto be = backend();
    trtnet::VideoSegmenter video(ws.engine("k.engine", "videokey"), ws.engine("n.engine", "nonkey"), video_opts(), be);
    std::string pattern;
    for (int i = 0; i < 12; ++i) {
        video.segment(Image(64, 48, 2, i).frame());
        pattern += video.last_was_keyframe() ? 'K' : '.';
    }
    CHECK_EQ(pattern, std::string("K....K....K."));
    CHECK_EQ(video.frames_since_reset(), int64_t(12));
}

TEST(keyframe_interval_one_makes_every_frame_a_keyframe_and_zero_is_refused) {
    Workspace ws;
    std::string k = ws.engine("k.engine", "videokey"), n = ws.engine("n.engine", "nonkey");
    trtnet::VideoSegmenter video(k, n, video_opts(1), backend());
    for (int i = 0; i < 3; ++i) {
        video.segment(Image(64, 48, 1, i).frame());
        CHECK(video.last_was_keyframe());
    }
    CHECK_ERROR(kUsage, "keyframe_interval must be >= 1, got 0", trtnet::VideoSegmenter(k, n, video_opts(0), backend()));
}

TEST(non_keyframes_read_the_latest_keyframe_state_in_place) {
    Workspace ws;
    auto be = backend();
    trtnet::VideoSegmenter video(ws.engine("k.engine", "videokey"), ws.engine("n.engine", "nonkey"), video_opts(3), be);
    std::vector<int> classes;
    for (int i = 0; i < 7; ++i) classes.push_back(video.segment(Image(64, 48, 1, 10 + i).frame())[0].class_id);
    // keyframes 0, 3, 6 report their own tag; non-keyframes 100 + the last keyframe's tag.
    std::vector<int> expected = {10, 110, 110, 13, 113, 113, 16};
    CHECK(classes == expected);
    fake::FakeEngine* key = be->engines[0];
    fake::FakeEngine* nonkey = be->engines[1];
    CHECK(key->spec_.role == "videokey" && nonkey->spec_.role == "nonkey");
    auto ks = key->snapshot().io, ns = nonkey->snapshot().io;
    CHECK(ns.at(trtnet::names::kKeyFpn1P4).second == ks.at(trtnet::names::kFpn1P4).second);
    CHECK(ns.at(trtnet::names::kKeyFpn1P5).second == ks.at(trtnet::names::kFpn1P5).second);
    CHECK(ns.at(trtnet::names::kKeyLateral3).second == ks.at(trtnet::names::kFpn1Lateral3).second);
    CHECK(ns.at(trtnet::names::kKeyFpn1P4).first == ks.at(trtnet::names::kFpn1P4).first);
    // The state never went through the host: only device-to-device frame copies? none; the only
    // device-to-host copies are the 4 detection tensors of each of the 7 frames.
    CHECK_EQ(be->log.count("d2h"), 7 * 4);
    CHECK_EQ(be->log.count("d2d"), 0);
}

TEST(reset_and_a_new_frame_size_or_batch_force_a_keyframe_and_restart_the_schedule) {
    Workspace ws;
    auto be = backend();
    trtnet::VideoSegmenter video(ws.engine("k.engine", "videokey batch=2"), ws.engine("n.engine", "nonkey batch=2"),
                                 video_opts(), be);
    std::string pattern;
    auto step = [&](Frame const& f) {
        video.segment(f);
        pattern += video.last_was_keyframe() ? 'K' : '.';
    };
    Image a(64, 48, 1, 1), b(80, 48, 1, 2);
    step(a.frame()), step(a.frame());
    video.reset();
    CHECK_EQ(video.frames_since_reset(), int64_t(0));
    step(a.frame()), step(a.frame()), step(b.frame()), step(b.frame()), step(b.frame());
    video.segment(std::vector<Frame>{b.frame(), b.frame()});  // batch 1 -> 2
    pattern += video.last_was_keyframe() ? 'K' : '.';
    step(b.frame()), step(b.frame()), step(b.frame()), step(b.frame()), step(b.frame()), step(b.frame());
    CHECK_EQ(pattern, std::string("K.K.K..KK....K"));
}

TEST(adaptive_keyframes_follow_the_motion_above_the_threshold_and_need_the_motion_output) {
    Workspace ws;
    std::string k = ws.engine("k.engine", "videokey"), n = ws.engine("n.engine", "nonkey motion");
    trtnet::VideoOptions o = video_opts(5);
    o.motion_threshold = 2.f;
    trtnet::VideoSegmenter video(k, n, o, backend());
    std::string pattern;
    // red / 10 is the fake's motion: 20 -> exactly the threshold (not above), 21 -> above
    for (int red : {0, 20, 20, 21, 0, 0, 0, 0, 0, 0}) {
        Image img(64, 48, 1, 1);
        img.bytes[2] = uint8_t(red);
        video.segment(img.frame());
        pattern += video.last_was_keyframe() ? 'K' : '.';
        CHECK_EQ(video.last_motion(), video.last_was_keyframe() ? -1.f : float(red) / 10.f);
    }
    CHECK_EQ(pattern, std::string("K...K....K"));  // frame 4 after motion 2.1 (early), frame 9 by the interval
    CHECK_ERROR(kWrongRole, "adaptive keyframes need the flow/motion output",
                trtnet::VideoSegmenter(k, ws.engine("plain.engine", "nonkey"), o, backend()));
    o.motion_threshold = NAN;
    CHECK_ERROR(kUsage, "motion_threshold must be finite", trtnet::VideoSegmenter(k, n, o, backend()));
}

TEST(a_failed_keyframe_leaves_no_state_so_the_next_frame_is_a_keyframe) {
    Workspace ws;
    auto be = backend();
    trtnet::VideoSegmenter video(ws.engine("k.engine", "videokey"), ws.engine("n.engine", "nonkey"), video_opts(), be);
    video.segment(Image(64, 48, 1, 1).frame());
    CHECK(!video.last_was_keyframe() || true);
    Image other(96, 48, 1, 2);
    be->engines[0]->fail_enqueue = true;
    CHECK_ERROR(kTensorRT, "TensorRT failed to enqueue", video.segment(other.frame()));
    CHECK_EQ(be->ranges_open, 0);
    be->engines[0]->fail_enqueue = false;
    video.segment(other.frame());
    CHECK(video.last_was_keyframe());
    CHECK_EQ(video.segment(other.frame())[0].class_id, 102);
}

TEST(batched_video_frames_keep_their_own_state) {
    Workspace ws;
    auto be = backend();
    trtnet::VideoSegmenter video(ws.engine("k.engine", "videokey batch=3"), ws.engine("n.engine", "nonkey batch=3"),
                                 video_opts(), be);
    Image a(64, 48, 1, 7), b(64, 48, 2, 8), c(64, 48, 3, 9);
    auto key = video.segment(std::vector<Frame>{a.frame(), b.frame(), c.frame()});
    auto non = video.segment(std::vector<Frame>{a.frame(), b.frame(), c.frame()});
    CHECK_EQ(key.size(), size_t(3));
    CHECK(!video.last_was_keyframe());
    CHECK_EQ(non[0][0].class_id, 107);
    CHECK_EQ(non[1][0].class_id, 108);
    CHECK_EQ(non[2][0].class_id, 109);
    CHECK_EQ(non[2].size(), size_t(3));
}

// ---- buffers, frames, graphs -----------------------------------------------------------

TEST(buffers_are_allocated_once_per_shape_and_grow_only) {
    Workspace ws;
    auto be = backend();
    trtnet::Segmenter seg(ws.engine("k.engine", "key"), opts(), be);
    Image big(96, 64, 2, 1), small(64, 48, 2, 1), bigger(128, 96, 2, 1);
    seg.segment(big.frame());
    int first = be->log.count("alloc");
    CHECK_EQ(first, 8);  // 7 engine tensors + masks
    seg.segment(big.frame());
    seg.segment(small.frame());
    CHECK_EQ(be->log.count("alloc"), first);
    seg.segment(bigger.frame());
    CHECK(be->log.count("alloc") > first);
    CHECK_EQ(be->log.count("free"), be->log.count("alloc") - first);
}

TEST(host_frames_go_through_pinned_staging_with_their_row_pitch) {
    Workspace ws;
    auto be = backend();
    trtnet::Segmenter seg(ws.engine("k.engine", "key"), opts(), be);
    Image img(33, 17, 1, 5, /*pad=*/13);
    be->log.clear();
    seg.segment(Frame::host(img.bytes.data(), 33, 17, img.pitch()));
    CHECK_EQ(be->log.count("h2d pinned"), 1);
    CHECK_EQ(be->log.count("h2d"), 1);
    auto in = be->engines[0]->snapshot().io.at("frame");
    CHECK((in.first == trtnet::Shape{1, 17, 33, 3}));
    auto const* packed = static_cast<uint8_t const*>(in.second);
    for (int y = 0; y < 17; ++y) {
        CHECK(std::memcmp(packed + y * 99, img.bytes.data() + size_t(y) * img.pitch(), 99) == 0);
    }
}

TEST(device_frames_are_copied_on_the_device_with_their_pitch) {
    Workspace ws;
    auto be = backend();
    trtnet::Segmenter seg(ws.engine("k.engine", "key"), opts(), be);
    Image img(40, 32, 3, 4, /*pad=*/8);
    void* dev = be->device_alloc(img.bytes.size());
    std::memcpy(dev, img.bytes.data(), img.bytes.size());
    be->log.clear();
    auto found = seg.segment(Frame::device(dev, 40, 32, img.pitch()));
    CHECK_EQ(found.size(), size_t(3));
    CHECK_EQ(be->log.count("d2d"), 1);
    CHECK_EQ(be->log.count("h2d"), 0);
    auto const* packed = static_cast<uint8_t const*>(be->engines[0]->snapshot().io.at("frame").second);
    CHECK(std::memcmp(packed + 31 * 120, img.bytes.data() + 31 * img.pitch(), 120) == 0);
    be->device_free(dev);
}

TEST(cuda_graph_is_captured_on_the_second_run_replayed_and_dropped_on_a_shape_change) {
    Workspace ws;
    auto be = backend();
    trtnet::Segmenter seg(ws.engine("k.engine", "key"), opts(), be);
    Image a(64, 48, 2, 1), b(80, 48, 3, 1), a5(64, 48, 5, 1);
    std::vector<std::string> runs;
    std::vector<size_t> counts;
    auto step = [&](Image const& img) {
        be->log.clear();
        counts.push_back(seg.segment(img.frame()).size());
        runs.push_back(be->log.count("enqueue") ? (be->log.count("capture") ? "?" : "plain")
                                                : be->log.count("capture") ? "capture" : "replay");
    };
    step(a), step(a), step(a5), step(b), step(a), step(a), step(a);
    std::vector<std::string> expected = {"plain", "capture", "replay", "plain", "plain", "capture", "replay"};
    CHECK(runs == expected);
    // Every run computed the frame it was given (a replay reads the same buffers, refilled).
    std::vector<size_t> want = {2, 2, 5, 3, 2, 2, 2};
    CHECK(counts == want);
    CHECK_EQ(be->live_graphs(), size_t(1));
}

TEST(a_failed_capture_falls_back_to_a_plain_enqueue_and_warns_once_per_shape) {
    Workspace ws;
    auto be = backend();
    be->fail_capture = true;
    trtnet::Segmenter seg(ws.engine("k.engine", "key"), opts(), be);
    Image a(64, 48, 2, 1);
    for (int i = 0; i < 4; ++i) CHECK_EQ(seg.segment(a.frame()).size(), size_t(2));
    CHECK_EQ(be->log.count("enqueue"), 4);
    CHECK_EQ(be->log.count("warn CUDA graph capture"), 1);
    CHECK_EQ(be->live_graphs(), size_t(0));
}

TEST(cuda_graphs_off_always_enqueues_plainly) {
    Workspace ws;
    auto be = backend();
    trtnet::Options o = opts();
    o.cuda_graphs = false;
    trtnet::Segmenter seg(ws.engine("k.engine", "key"), o, be);
    for (int i = 0; i < 3; ++i) seg.segment(Image(64, 48, 1, 1).frame());
    CHECK_EQ(be->log.count("enqueue"), 3);
    CHECK_EQ(be->log.count("capture"), 0);
}

TEST(video_graphs_follow_each_engine_and_a_keyframe_reallocation_invalidates_the_nonkeyframe_graph) {
    Workspace ws;
    auto be = backend();
    trtnet::VideoSegmenter video(ws.engine("k.engine", "videokey"), ws.engine("n.engine", "nonkey"), video_opts(), be);
    Image a(64, 48, 1, 1), b(128, 96, 1, 2);
    for (int i = 0; i < 5; ++i) video.segment(a.frame());  // K . . . .
    CHECK_EQ(be->log.count("enqueue nonkey"), 1);
    CHECK_EQ(be->log.count("capture nonkey"), 1);
    CHECK_EQ(be->log.count("launch nonkey"), 3);  // capture launches once, then two replays
    video.segment(b.frame());                     // keyframe at a larger size: key buffers grow
    be->log.clear();
    CHECK_EQ(video.segment(b.frame())[0].class_id, 102);  // plain: new shapes and state addresses
    CHECK_EQ(be->log.count("enqueue nonkey"), 1);
}

TEST(one_synchronisation_per_call_and_none_for_the_masks) {
    Workspace ws;
    auto be = backend();
    trtnet::Segmenter seg(ws.engine("k.engine", "key"), opts(), be);
    Image a(64, 48, 3, 1);
    seg.segment(a.frame());
    be->log.clear();
    auto found = seg.segment(a.frame());
    CHECK_EQ(be->log.count("sync"), 1);
    std::vector<std::string> const& ev = be->log.events;
    size_t sync = std::find(ev.begin(), ev.end(), "sync") - ev.begin();
    size_t masks = std::find(ev.begin(), ev.end(), "masks 3") - ev.begin();
    CHECK(sync < masks && masks < ev.size());
    found.masks_to_host();
    CHECK_EQ(be->log.count("sync"), 2);
}

TEST(nvtx_ranges_name_the_stages_and_stay_balanced) {
    Workspace ws;
    auto be = backend();
    trtnet::VideoSegmenter video(ws.engine("k.engine", "videokey"), ws.engine("n.engine", "nonkey"), video_opts(), be);
    Image a(64, 48, 1, 1);
    video.segment(a.frame());
    video.segment(a.frame());
    std::vector<std::string> ranges;
    for (auto const& e : be->log.events) {
        if (e.rfind("range ", 0) == 0) ranges.push_back(e.substr(6));
    }
    std::vector<std::string> expected = {"upload", "engine keyframe",    "postprocess", "masks",
                                         "upload", "engine nonkeyframe", "postprocess", "masks"};
    CHECK(ranges == expected);
    CHECK_EQ(be->ranges_open, 0);
}

// ---- postprocess and masks ---------------------------------------------------------------

TEST(score_threshold_keeps_scores_strictly_above_it) {
    Workspace ws;
    std::string engine = ws.engine("k.engine", "key");
    Image a(64, 48, 5, 1);
    float third = 0.9f - 0.1f * 2.f;  // the fake's score of detection 2, exactly
    trtnet::Options o = opts();
    o.score_threshold = third;
    CHECK_EQ(trtnet::Segmenter(engine, o, backend()).segment(a.frame()).size(), size_t(2));
    o.score_threshold = std::nextafter(third, 0.f);
    CHECK_EQ(trtnet::Segmenter(engine, o, backend()).segment(a.frame()).size(), size_t(3));
    o.score_threshold = 0.f;  // 0 keeps everything, like upstream's postprocess
    CHECK_EQ(trtnet::Segmenter(engine, o, backend()).segment(a.frame()).size(), size_t(5));
}

TEST(top_k_keeps_the_best_and_a_negative_top_k_is_refused) {
    Workspace ws;
    std::string engine = ws.engine("k.engine", "key");
    trtnet::Options o = opts();
    o.top_k = 2;
    auto found = trtnet::Segmenter(engine, o, backend()).segment(Image(64, 48, 5, 1).frame());
    CHECK_EQ(found.size(), size_t(2));
    CHECK(found[0].score > found[1].score);
    CHECK(std::fabs(found[0].score - 0.9f) < 1e-6f);
    o.top_k = -1;
    CHECK_ERROR(kUsage, "top_k must be >= 0", trtnet::Segmenter(engine, o, backend()));
}

TEST(count_beyond_capacity_is_clamped_and_zero_detections_give_empty_instances) {
    Workspace ws;
    trtnet::Segmenter seg(ws.engine("k.engine", "key max_det=3"), opts(), backend());
    CHECK_EQ(seg.segment(Image(64, 48, 3, 1).frame()).size(), size_t(3));
    auto none = seg.segment(Image(64, 48, 4, 1).frame());  // 4 % (3 + 1) == 0
    CHECK(none.empty());
    CHECK(none.device_masks() == nullptr);
    CHECK(none.masks_to_host().empty());
}

TEST(boxes_are_pixels_truncated_like_upstream_and_classes_are_named) {
    Workspace ws;
    trtnet::Segmenter seg(ws.engine("k.engine", "key"), opts(), backend());
    auto found = seg.segment(Image(33, 47, 2, 1).frame());
    // det 0: [0, 0, 0.5, 0.5] relative -> 0.5 * 33 = 16.5 -> 16, 0.5 * 47 = 23.5 -> 23
    CHECK_EQ(found[0].box.x1, int64_t(0));
    CHECK_EQ(found[0].box.x2, int64_t(16));
    CHECK_EQ(found[0].box.y2, int64_t(23));
    // det 1: x from 0.1 * 33 = 3.3 -> 3 to 0.6 * 33 = 19.8 -> 19
    CHECK_EQ(found[1].box.x1, int64_t(3));
    CHECK_EQ(found[1].box.x2, int64_t(19));
    CHECK_EQ(found[0].class_name, std::string("bicycle"));  // tag 1 -> classes[1]
    auto unnamed = seg.segment(Image(33, 47, 1, 9).frame());
    CHECK_EQ(unnamed[0].class_id, 9);
    CHECK_EQ(unnamed[0].class_name, std::string(""));
    CHECK_EQ(seg.info().classes.size(), size_t(3));
    CHECK_EQ(seg.info().max_height, fake::kMaxSide);
}

TEST(swapped_out_of_range_and_nan_boxes_are_sanitised_like_upstream) {
    Workspace ws;
    trtnet::Segmenter seg(ws.engine("k.engine", "key wild"), opts(), backend());
    auto found = seg.segment(Image(40, 20, 3, 1).frame());
    CHECK_EQ(found.size(), size_t(3));  // threshold 0 keeps all, like upstream; NaN sorts last
    CHECK(std::fabs(found[0].score - 0.9f) < 1e-6f && std::isnan(found[2].score));
    // x: min(1.25, -0.5) * 40 = -20 -> 0, max * 40 = 50 -> 40; y: 0.3 * 20 = 6, 0.75 * 20 = 15
    // (trtnet/runtime/masks.py boxes_to_pixels gives [0, 6, 40, 15] for these)
    CHECK_EQ(found[0].box.x1, int64_t(0));
    CHECK_EQ(found[0].box.y1, int64_t(6));
    CHECK_EQ(found[0].box.x2, int64_t(40));
    CHECK_EQ(found[0].box.y2, int64_t(15));
    CHECK_EQ(found[2].box.x2, int64_t(0));  // a NaN box gives 0s, never undefined behaviour
}

TEST(masks_stay_on_the_device_until_asked_and_go_stale_on_the_next_call) {
    Workspace ws;
    auto be = backend();
    auto seg = std::make_unique<trtnet::Segmenter>(ws.engine("k.engine", "key half"), opts(), be);
    auto found = seg->segment(Image(20, 10, 2, 1).frame());
    CHECK(be->memory.is_device(found.device_masks(), 2 * 200));
    CHECK(be->mask_jobs.back().det_type == trtnet::DType::kHalf);
    CHECK(be->mask_jobs.back().proto_type == trtnet::DType::kHalf);
    CHECK_EQ(found[1].box.x1, int64_t(1));  // fp16 0.1 = 0.0999756 -> 1.9995 px, truncated like upstream
    CHECK_EQ(be->mask_jobs.back().count, 2);
    std::vector<uint8_t> masks = found.masks_to_host();
    CHECK_EQ(masks.size(), size_t(2 * 10 * 20));
    CHECK_EQ(int(masks[0]), 1);        // det 0 covers x < 10, y < 5
    CHECK_EQ(int(masks[10]), 0);       // x = 10
    CHECK_EQ(int(masks[200 + 2]), 1);  // det 1 covers 2 <= x < 12
    CHECK_EQ(int(masks[200 + 1]), 0);
    auto later = seg->segment(Image(20, 10, 1, 1).frame());
    CHECK_ERROR(kStaleMasks, "overwritten by a later segment() call", found.masks_to_host());
    CHECK(later.device_masks() != nullptr);
    seg.reset();
    CHECK_ERROR(kStaleMasks, "the segmenter is gone", later.device_masks());
}

TEST(detections_not_best_first_are_ordered_and_gathered_on_the_device) {
    Workspace ws;
    auto be = backend();
    trtnet::Options o = opts();
    o.score_threshold = 0.25f;  // keeps scores 0.3, 0.4 of 0.1, 0.2, 0.3, 0.4
    trtnet::Segmenter seg(ws.engine("k.engine", "key unsorted"), o, be);
    auto found = seg.segment(Image(20, 10, 4, 1).frame());
    CHECK_EQ(found.size(), size_t(2));
    CHECK(std::fabs(found[0].score - 0.4f) < 1e-6f && std::fabs(found[1].score - 0.3f) < 1e-6f);
    CHECK_EQ(found[0].box.x1, int64_t(6));  // det 3: x from 0.3 * 20
    CHECK_EQ(be->log.count("d2d"), 4);      // 2 coeff rows + 2 box rows
    std::vector<uint8_t> masks = found.masks_to_host();
    CHECK_EQ(int(masks[5]), 0);
    CHECK_EQ(int(masks[6]), 1);        // mask 0 is det 3's box
    CHECK_EQ(int(masks[200 + 4]), 1);  // mask 1 is det 2's box, from x = 4
}

TEST(detections_whose_boxes_and_coeffs_differ_in_type_are_refused) {
    Workspace ws;
    trtnet::Segmenter seg(ws.engine("k.engine", "key mixed"), opts(), backend());
    CHECK_ERROR(kWrongRole, "det/boxes is float32 and det/coeffs float16", seg.segment(Image(20, 10, 1, 1).frame()));
}

TEST(mask_scores_of_a_rescoring_engine_follow_their_detection) {
    Workspace ws;
    trtnet::Options o = opts();
    o.score_threshold = 0.55f;  // box scores 0.9, 0.8, 0.7, 0.6 of 0.9 .. 0.5 pass: the mask scores do not decide
    trtnet::Segmenter seg(ws.engine("k.engine", "key rescored"), o, backend());
    auto found = seg.segment(Image(40, 20, 5, 1).frame());
    CHECK_EQ(found.size(), size_t(4));
    for (size_t i = 0; i < found.size(); ++i) {  // det i: box 0.9 - 0.1 i, mask 0.05 + 0.1 i (the fake's)
        CHECK(std::fabs(found[i].score - (0.9f - 0.1f * float(i))) < 1e-6f);
        CHECK(std::fabs(found[i].mask_score - (0.05f + 0.1f * float(i))) < 1e-6f);
        CHECK_EQ(found[i].box.x1, int64_t(4 * i));  // the same detection's box (0.1 i * 40)
    }
}

TEST(mask_scores_of_unsorted_and_batched_detections_stay_with_their_detection) {
    Workspace ws;
    trtnet::Options o = opts();
    o.top_k = 2;
    trtnet::Segmenter seg(ws.engine("k.engine", "key unsorted rescored batch=2"), o, backend());
    Image a(20, 10, 4, 1), b(20, 10, 3, 2);
    auto out = seg.segment(std::vector<Frame>{a.frame(), b.frame()});
    // best box score first: det 3 (0.4), det 2 (0.3) of frame a; det 2, det 1 of frame b
    CHECK(std::fabs(out[0][0].score - 0.4f) < 1e-6f && std::fabs(out[0][0].mask_score - 0.35f) < 1e-6f);
    CHECK(std::fabs(out[0][1].score - 0.3f) < 1e-6f && std::fabs(out[0][1].mask_score - 0.25f) < 1e-6f);
    CHECK(std::fabs(out[1][0].score - 0.3f) < 1e-6f && std::fabs(out[1][0].mask_score - 0.25f) < 1e-6f);
    CHECK(std::fabs(out[1][1].score - 0.2f) < 1e-6f && std::fabs(out[1][1].mask_score - 0.15f) < 1e-6f);
}

TEST(without_mask_rescoring_the_mask_score_is_the_box_score) {
    Workspace ws;
    trtnet::Segmenter seg(ws.engine("k.engine", "key half"), opts(), backend());
    auto found = seg.segment(Image(40, 20, 3, 1).frame());
    CHECK_EQ(found.size(), size_t(3));
    for (auto const& d : found) CHECK_EQ(d.mask_score, d.score);
}

TEST(a_mask_scores_output_of_the_wrong_size_is_refused) {
    Workspace ws;
    trtnet::Segmenter seg(ws.engine("k.engine", "key short_mask_scores"), opts(), backend());
    CHECK_ERROR(kWrongRole, "output 'mask_scores' is [1, 7], expected 8 values", seg.segment(Image(20, 10, 1, 1).frame()));
}

TEST(batched_frames_give_one_instances_per_frame) {
    Workspace ws;
    auto be = backend();
    trtnet::Segmenter seg(ws.engine("k.engine", "key batch=4"), opts(), be);
    Image a(64, 48, 1, 0), b(64, 48, 3, 2), c(64, 48, 0, 1);
    auto out = seg.segment(std::vector<Frame>{a.frame(), b.frame(), c.frame()});
    CHECK_EQ(out.size(), size_t(3));
    CHECK_EQ(out[0].size(), size_t(1));
    CHECK_EQ(out[1].size(), size_t(3));
    CHECK(out[2].empty());
    CHECK_EQ(out[1][0].class_name, std::string("car"));
    CHECK_EQ(be->log.count("enqueue"), 1);
    auto m0 = out[0].masks_to_host(), m1 = out[1].masks_to_host();
    CHECK(out[1].device_masks() == out[0].device_masks() + 64 * 48);
    // rows [0, count) of each frame's own outputs, in place (max_det 8 x mask_dim 4 floats apart)
    CHECK_EQ(static_cast<char const*>(be->mask_jobs.back().coeffs) - static_cast<char const*>(be->mask_jobs.front().coeffs), 128);
    CHECK_EQ(be->log.count("d2d"), 0);
}

// ---- errors ------------------------------------------------------------------------------

TEST(frames_outside_the_profile_are_errors_naming_the_range_and_its_bounds_are_inclusive) {
    Workspace ws;
    trtnet::Segmenter seg(ws.engine("k.engine", "key batch=2"), opts(), backend());
    seg.segment(Image(8, 8, 1, 1).frame());
    seg.segment(Image(1080, 8, 1, 1).frame());
    CHECK_ERROR(kFrameSize, "frame 8x7 (HxW) is outside the optimization profile", seg.segment(Image(7, 8, 1, 1).frame()));
    CHECK_ERROR(kFrameSize, "min 8x8, max 1080x1080", seg.segment(Image(1081, 8, 1, 1).frame()));
    Image f(8, 8, 1, 1);
    CHECK_ERROR(kFrameSize, "batch of 3 frames", seg.segment(std::vector<Frame>{f.frame(), f.frame(), f.frame()}));
    CHECK_EQ(seg.segment(std::vector<Frame>{f.frame(), f.frame()}).size(), size_t(2));
}

TEST(malformed_frames_are_errors_naming_the_problem) {
    Workspace ws;
    trtnet::Segmenter seg(ws.engine("k.engine", "key batch=2"), opts(), backend());
    Image a(64, 48, 1, 1), b(60, 48, 1, 1);
    CHECK_ERROR(kFrame, "row pitch 191 bytes is less than width * 3 = 192", seg.segment(Frame::host(a.bytes.data(), 64, 48, 191)));
    CHECK_ERROR(kFrame, "has no data", seg.segment(Frame::host(nullptr, 64, 48)));
    CHECK_ERROR(kFrame, "0x48 (WxH): it must have pixels", seg.segment(Frame::host(a.bytes.data(), 0, 48)));
    CHECK_ERROR(kFrame, "frame 1 is 60x48", seg.segment(std::vector<Frame>{a.frame(), b.frame()}));
    CHECK_ERROR(kFrame, "no frame given", seg.segment(std::vector<Frame>{}));
    seg.segment(Frame::host(a.bytes.data(), 64, 48, 192));  // pitch exactly width * 3
}

TEST(engines_in_the_wrong_role_are_refused) {
    Workspace ws;
    std::string key = ws.engine("k.engine", "key"), videokey = ws.engine("v.engine", "videokey"),
                nonkey = ws.engine("n.engine", "nonkey"), labelled = ws.engine("l.engine", "key", "nonkeyframe");
    CHECK_ERROR(kWrongRole, "n.engine is a non-keyframe engine", trtnet::Segmenter(nonkey, opts(), backend()));
    CHECK_ERROR(kWrongRole, "l.engine is a non-keyframe engine", trtnet::Segmenter(labelled, opts(), backend()));
    CHECK_ERROR(kWrongRole, "does not export the keyframe state", trtnet::VideoSegmenter(key, nonkey, video_opts(), backend()));
    CHECK_ERROR(kWrongRole, "are the two swapped?", trtnet::VideoSegmenter(nonkey, videokey, video_opts(), backend()));
    CHECK_ERROR(kWrongRole, "k.engine is not a non-keyframe engine", trtnet::VideoSegmenter(videokey, key, video_opts(), backend()));
    std::string other = ws.engine("o.engine", "nonkey", "", ", \"config\": \"yolact_edge_resnet50_config\"");
    CHECK_ERROR(kWrongRole, "of config yolact_edge_mobilenetv2_config", trtnet::VideoSegmenter(videokey, other, video_opts(), backend()));
    trtnet::Segmenter ok(videokey, opts(), backend());  // a video keyframe engine segments single images too
}

TEST(engines_of_another_tensorrt_or_gpu_are_refused_before_deserialization) {
    Workspace ws;
    std::string engine = ws.engine("k.engine", "key");
    auto be = backend();
    be->version = 110100;
    CHECK_ERROR(kVersion, "built by TensorRT 10.3.0.26; this program runs TensorRT 11.1.0", trtnet::Segmenter(engine, opts(), be));
    CHECK(be->engines.empty());
    be = backend();
    be->cc = "8.6";
    CHECK_ERROR(kDevice, "compute capability 8.7; this GPU is 8.6", trtnet::Segmenter(engine, opts(), be));
    be = backend();
    be->version = 100301;  // another patch release
    CHECK_ERROR(kVersion, "this program runs TensorRT 10.3.1", trtnet::Segmenter(engine, opts(), be));
}

TEST(sidecar_problems_are_errors_naming_the_file) {
    Workspace ws;
    std::string engine = ws.engine("k.engine", "key");
    std::remove((engine + ".json").c_str());
    CHECK_ERROR(kSidecar, "no sidecar " + engine + ".json", trtnet::Segmenter(engine, opts(), backend()));
    ws.write("k.engine.json", "{\"classes\": [\"a\",]}");
    CHECK_ERROR(kSidecar, "is not valid JSON: unexpected character ']' at byte 17", trtnet::Segmenter(engine, opts(), backend()));
    ws.write("k.engine.json", "[1]");
    CHECK_ERROR(kSidecar, "is not a JSON object", trtnet::Segmenter(engine, opts(), backend()));
    ws.write("k.engine.json", "{\"classes\": [1]}");
    CHECK_ERROR(kSidecar, "classes holds something other than names", trtnet::Segmenter(engine, opts(), backend()));
    ws.write("k.engine.json", "{\"network\": \"both\"}");
    CHECK_ERROR(kSidecar, "unknown role 'both'", trtnet::Segmenter(engine, opts(), backend()));
    // What the builder could not tell is not checked (TensorRT's deserialization still is).
    ws.write("k.engine.json", "{\"tensorrt_version\": \"unknown\", \"gpu\": {\"name\": \"unknown\", \"reason\": \"x\"}}");
    auto be = backend();
    be->version = 110100, be->cc = "9.0";
    trtnet::Segmenter(engine, opts(), be);
    ws.write("other.json", "{\"classes\": [\"x\"], \"tensorrt_version\": \"10.3.0.26\"}");
    trtnet::Options o = opts();
    o.sidecar = ws.dir + "/other.json";
    CHECK_EQ(trtnet::Segmenter(engine, o, backend()).info().classes.at(0), std::string("x"));
}

TEST(a_sidecar_of_another_build_is_refused) {
    Workspace ws;
    std::string engine = ws.engine("k.engine", "key");  // 309 bytes
    ws.write("k.engine.json", "{\"engine\": {\"bytes\": 310, \"sha256\": \"x\"}}");
    CHECK_ERROR(kSidecar, "describes an engine of 310 bytes, the file has 309", trtnet::Segmenter(engine, opts(), backend()));
    std::string io = "\"io\": [{\"name\": \"frame\"}, {\"name\": \"det/count\"}, {\"name\": \"det/boxes\"}, "
                     "{\"name\": \"det/scores\"}, {\"name\": \"det/classes\"}, {\"name\": \"det/coeffs\"}";
    ws.write("k.engine.json", "{\"engine\": {\"bytes\": 309}, " + io + "]}");
    CHECK_ERROR(kSidecar, "lists other I/O tensors than the engine has", trtnet::Segmenter(engine, opts(), backend()));
    ws.write("k.engine.json", "{\"engine\": {\"bytes\": 309}, " + io + ", {\"name\": \"proto\"}]}");
    trtnet::Segmenter(engine, opts(), backend());
}

TEST(engine_files_that_are_not_engines_are_refused) {
    Workspace ws;
    std::string good = ws.engine("k.engine", "key");
    auto with_body = [&](std::string const& body) {
        ws.write("k.engine", body);
        return good;
    };
    trtnet::Options with_sidecar = opts();
    with_sidecar.sidecar = good + ".json";
    CHECK_ERROR(kEngineFile, "engine file not found or unreadable: " + ws.dir + "/none.engine",
                trtnet::Segmenter(ws.dir + "/none.engine", with_sidecar, backend()));
    CHECK_ERROR(kEngineFile, "is 255 bytes, too small", trtnet::Segmenter(with_body(std::string(255, 'x')), opts(), backend()));
    trtnet::Segmenter(with_body("FAKE key\n" + std::string(247, 'x')), opts(), backend());  // exactly 256 bytes
    CHECK_ERROR(kEngineFile, "a zip archive", trtnet::Segmenter(with_body("PK\x03\x04" + std::string(300, 'x')), opts(), backend()));
    CHECK_ERROR(kEngineFile, "could not deserialize", trtnet::Segmenter(with_body("FAKE key corrupt\n" + std::string(300, 'x')), opts(), backend()));
}

TEST(the_plugin_library_is_found_next_to_the_engine_or_named_and_its_absence_is_an_error) {
    Workspace ws;
    std::string engine = ws.engine("k.engine", "key");
    auto be = backend();
    trtnet::Segmenter seg(engine, opts(), be);
    CHECK(be->plugins_loaded == std::vector<std::string>{ws.dir + "/libtrtnet_plugins.so"});
    CHECK_ERROR(kPluginLibrary, "plugin library /nowhere/libx.so (Options::plugin_library) not found",
                trtnet::Segmenter(engine, opts("/nowhere/libx.so"), backend()));
    std::remove((ws.dir + "/libtrtnet_plugins.so").c_str());
    unsetenv("TRTNET_PLUGIN_LIBRARY");
    CHECK_ERROR(kPluginLibrary, "libtrtnet_plugins.so not found", trtnet::Segmenter(engine, opts(), backend()));
    std::string named = ws.write("libtrtnet_plugins.so.10", "x");
    std::string engine2 = ws.engine("k2.engine", "key", "", ", \"plugin_library\": {\"path\": \"/build/machine/libtrtnet_plugins.so.10\", \"sha256\": \"ab\"}");
    be = backend();
    trtnet::Segmenter by_sidecar(engine2, opts(), be);
    CHECK(be->plugins_loaded == std::vector<std::string>{named});
}

// Every engine folder has its copy of the library (trtnet.build writes it next to the engine),
// and a named library may be followed by the default: TensorRT's one registry per process
// refuses a second loadLibrary of the same creators (the fake's registry does too).
TEST(a_second_spelling_of_the_plugin_library_is_not_loaded_again) {
    Workspace ws;
    std::string a = ws.engine("k.engine", "key");
    mkdir((ws.dir + "/other").c_str(), 0700);
    std::string b = ws.engine("other/k.engine", "key");
    ws.write("other/libtrtnet_plugins.so", "another copy");
    auto be = backend();
    trtnet::Segmenter first(a, opts(ws.dir + "/./libtrtnet_plugins.so"), be);  // Options::plugin_library
    trtnet::Segmenter second(a, opts(), be);                                  // then the default spelling
    trtnet::Segmenter third(b, opts(), be);                                   // another folder's copy
    trtnet::VideoSegmenter video(ws.engine("vk.engine", "videokey"), ws.engine("nk.engine", "nonkey"), video_opts(), be);
    CHECK_EQ(be->load_attempts, 1);
    CHECK(be->plugins_loaded == std::vector<std::string>{ws.dir + "/./libtrtnet_plugins.so"});
    CHECK_EQ(third.segment(Image(16, 16, 2, 1).frame()).size(), size_t(2));
}

TEST(plugins_registered_by_someone_else_are_used_and_a_partial_registration_is_an_error) {
    Workspace ws;
    std::string engine = ws.engine("k.engine", "key");
    auto be = backend();
    be->registered = {"FastNMS/1/trtnet", "InverseWarp/1/trtnet"};  // e.g. trtnetInitPlugins() or Python's load()
    trtnet::Segmenter seg(engine, opts(), be);
    CHECK_EQ(be->load_attempts, 0);
    be = backend();
    be->registered = {"FastNMS/1/trtnet"};
    CHECK_ERROR(kPluginLibrary, "only some of trtnet's plugins", trtnet::Segmenter(engine, opts(), be));
    CHECK_EQ(be->load_attempts, 0);
    be = backend();
    be->registered = {"FastNMS/2/trtnet", "InverseWarp/1/other"};  // other versions / namespaces do not count
    trtnet::Segmenter loads(engine, opts(), be);
    CHECK_EQ(be->load_attempts, 1);
}

// ---- TensorRT's own plugin library (libnvinfer_plugin: YOLACT++'s ModulatedDeformConv2d) ----

// A YOLACT++ engine as trtnet.build writes it: the plan names the creator, the sidecar lists it.
std::string const kPlusSidecar = ", \"config\": \"yolact_plus_resnet50\", \"tensorrt_plugins\": [\"ModulatedDeformConv2d\"]";

TEST(a_yolact_plus_engine_initialises_libnvinfer_plugin_of_the_running_major_before_deserializing) {
    Workspace ws;
    std::string engine = ws.engine("plus.engine", "key rescored ModulatedDeformConv2d", "", kPlusSidecar);
    auto be = backend();
    trtnet::Segmenter seg(engine, opts(), be);
    CHECK(be->nvinfer_plugin_opened == std::vector<std::string>{"libnvinfer_plugin.so.10"});
    CHECK(be->log.count("initLibNvInferPlugins") == 1);
    CHECK(seg.info().tensorrt_plugins == std::vector<std::string>{"ModulatedDeformConv2d"});
    CHECK_EQ(seg.segment(Image(16, 16, 2, 1).frame()).size(), size_t(2));
    trtnet::Segmenter again(engine, opts(), be);  // registered now: not opened twice
    CHECK_EQ(be->nvinfer_plugin_opened.size(), size_t(1));
    auto eleven = backend();  // TensorRT 11: version "2" (and "1") from libnvinfer_plugin.so.11
    eleven->version = 110100;
    eleven->nvinfer_plugin_creators = {"ModulatedDeformConv2d/2/", "ModulatedDeformConv2d/1/"};
    std::string engine11 = ws.engine("plus11.engine", "key ModulatedDeformConv2d", "",
                                     kPlusSidecar + ", \"tensorrt_version\": \"11.1.0\"");
    trtnet::Segmenter seg11(engine11, opts(), eleven);
    CHECK(eleven->nvinfer_plugin_opened == std::vector<std::string>{"libnvinfer_plugin.so.11"});
}

TEST(libnvinfer_plugin_is_opened_only_for_engines_that_need_it_and_not_registered) {
    Workspace ws;
    auto be = backend();
    trtnet::Segmenter plain(ws.engine("k.engine", "key"), opts(), be);  // YolactEdge: no DCN
    CHECK(be->nvinfer_plugin_opened.empty());
    be->nvinfer_plugin_present = false;  // never asked for, so its absence does not matter
    trtnet::Segmenter plain2(ws.engine("k2.engine", "key", "", ", \"tensorrt_plugins\": []"), opts(), be);
    CHECK(be->nvinfer_plugin_opened.empty());
    auto python = backend();  // registered by someone else (Python's trt.init_libnvinfer_plugins, the program)
    python->registered.insert("ModulatedDeformConv2d/2/");
    python->nvinfer_plugin_present = false;
    trtnet::Segmenter seg(ws.engine("plus.engine", "key ModulatedDeformConv2d", "", kPlusSidecar), opts(), python);
    CHECK(python->nvinfer_plugin_opened.empty());
}

TEST(the_sidecar_or_else_the_plan_says_an_engine_uses_modulated_deform_conv) {
    Workspace ws;
    auto be = backend();  // the sidecar says so (the plan's bytes are not searched for it then)
    trtnet::Segmenter by_sidecar(ws.engine("s.engine", "key", "", kPlusSidecar), opts(), be);
    CHECK_EQ(be->nvinfer_plugin_opened.size(), size_t(1));
    be = backend();  // a sidecar written before tensorrt_plugins: the plan names the creator
    trtnet::Segmenter by_plan(ws.engine("p.engine", "key ModulatedDeformConv2d"), opts(), be);
    CHECK_EQ(be->nvinfer_plugin_opened.size(), size_t(1));
    CHECK(by_plan.info().tensorrt_plugins == std::vector<std::string>{"ModulatedDeformConv2d"});
    CHECK_ERROR(kSidecar, "tensorrt_plugins is not a list",
                trtnet::Segmenter(ws.engine("b.engine", "key", "", ", \"tensorrt_plugins\": \"ModulatedDeformConv2d\""),
                                  opts(), backend()));
    CHECK_ERROR(kSidecar, "tensorrt_plugins holds something other than names",
                trtnet::Segmenter(ws.engine("c.engine", "key", "", ", \"tensorrt_plugins\": [1]"), opts(), backend()));
}

TEST(a_missing_libnvinfer_plugin_or_creator_is_an_error_naming_the_library_and_the_config) {
    Workspace ws;
    std::string engine = ws.engine("plus.engine", "key ModulatedDeformConv2d", "", kPlusSidecar);
    auto be = backend();
    be->nvinfer_plugin_present = false;
    CHECK_ERROR(kPluginLibrary, "(config yolact_plus_resnet50) uses TensorRT's ModulatedDeformConv2d plugin",
                trtnet::Segmenter(engine, opts(), be));
    CHECK_ERROR(kPluginLibrary, "libnvinfer_plugin.so.10 could not be loaded: libnvinfer_plugin.so.10: cannot open",
                trtnet::Segmenter(engine, opts(), be));
    CHECK_EQ(int(be->engines.size()), 0);  // stopped before deserializing
    be = backend();
    be->nvinfer_plugin_init_ok = false;
    CHECK_ERROR(kPluginLibrary, "initLibNvInferPlugins returned false", trtnet::Segmenter(engine, opts(), be));
    be = backend();
    be->nvinfer_plugin_creators = {"ModulatedDeformConv2d/1/other", "ModulatedDeformConv2d/3/"};  // not what we look up
    CHECK_ERROR(kPluginLibrary, "libnvinfer_plugin.so.10 loaded but registered no ModulatedDeformConv2d",
                trtnet::Segmenter(engine, opts(), be));
    CHECK_EQ(int(be->engines.size()), 0);
    try {  // an Error is a std::runtime_error: callers that catch only that see the message too
        trtnet::Segmenter(engine, opts(), be);
        CHECK(false);
    } catch (std::runtime_error const& e) {
        CHECK(std::string(e.what()).find("plus.engine (config yolact_plus_resnet50)") != std::string::npos);
    }
}

// ---- frames produced on another stream (Frame::ready) ------------------------------------

// A device buffer the producer fills on its own stream: count / tag in pixel (0,0), as Image.
struct ProducedFrame {
    void* data;
    Image img;
    ProducedFrame(fake::FakeBackend& be, bool device, int count, int tag) : img(24, 16, count, tag) {
        size_t bytes = img.bytes.size();
        data = device ? be.device_alloc(bytes) : be.host_alloc(bytes);  // zeros: "count 0" until written
        std::vector<uint8_t> pixels = img.bytes;
        void* dst = data;
        be.producer().submit([dst, pixels] { std::memcpy(dst, pixels.data(), pixels.size()); });
    }
};

TEST(a_device_frame_waits_for_the_producers_event_before_it_is_read) {
    Workspace ws;
    auto be = backend();
    trtnet::Segmenter seg(ws.engine("k.engine", "key"), opts(), be);
    trtnet::Stream ours = be->create_stream();
    {  // the race the fake models: without `ready` the copy reads the buffer before the producer ran
        ProducedFrame p(*be, true, 3, 9);
        CHECK_EQ(seg.segment(Frame::device(p.data, 24, 16)).size(), size_t(0));
        be->producer().run_until(be->producer().record());
        be->device_free(p.data);
    }
    ProducedFrame p(*be, true, 3, 9);
    CUevent_st* ready = be->producer_event();
    be->log.clear();
    trtnet::Instances found = seg.segment(Frame::device(p.data, 24, 16, 0, ready));
    CHECK_EQ(found.size(), size_t(3));
    CHECK_EQ(found[0].class_id, 9);
    CHECK_EQ(be->producer().pending(), size_t(0));
    int wait = be->log.position(ours, "wait producer event"), copy = be->log.position(ours, "d2d");
    CHECK(wait >= 0 && copy > wait);                            // on our stream: the wait, then the copy
    CHECK(be->log.position(ours, "launch key") > copy);  // 2nd run: the captured graph, after the copy
    CHECK_EQ(be->log.count("event sync"), 0);                    // a device-side wait, not a host one
    CHECK_EQ(be->log.count("sync"), 1);
    be->device_free(p.data);
}

TEST(a_host_frame_filled_by_an_async_copy_is_waited_for_on_the_host_before_staging) {
    Workspace ws;
    auto be = backend();
    trtnet::Segmenter seg(ws.engine("k.engine", "key"), opts(), be);
    ProducedFrame p(*be, false, 2, 5);
    CUevent_st* ready = be->producer_event();
    be->log.clear();
    trtnet::Instances found = seg.segment(Frame::host(p.data, 24, 16, 0, ready));
    CHECK_EQ(found.size(), size_t(2));
    CHECK_EQ(found[0].class_id, 5);
    auto const& ev = be->log.events;
    auto at = [&](std::string const& e) { return std::find(ev.begin(), ev.end(), e) - ev.begin(); };
    CHECK(at("event sync") < at("h2d pinned"));
    CHECK_EQ(be->log.count("wait"), 0);
    be->host_free(p.data);
}

TEST(frames_of_a_batch_sharing_one_event_wait_once) {
    Workspace ws;
    auto be = backend();
    trtnet::Segmenter seg(ws.engine("k.engine", "key batch=3"), opts(), be);
    ProducedFrame a(*be, true, 1, 1), b(*be, true, 2, 2), c(*be, true, 3, 3);
    CUevent_st* ready = be->producer_event();
    be->log.clear();
    auto found = seg.segment({Frame::device(a.data, 24, 16, 0, ready), Frame::device(b.data, 24, 16, 0, ready),
                              Frame::device(c.data, 24, 16, 0, ready)});
    CHECK_EQ(be->log.count("wait producer event"), 1);
    CHECK_EQ(found[0].size() + found[1].size() + found[2].size(), size_t(6));
    for (void* d : {a.data, b.data, c.data}) be->device_free(d);
}

TEST(everything_allocated_is_freed_and_an_own_stream_destroyed) {
    Workspace ws;
    auto be = backend();
    {
        trtnet::VideoOptions o = video_opts();
        o.timing = true;
        trtnet::VideoSegmenter video(ws.engine("k.engine", "videokey"), ws.engine("n.engine", "nonkey"), o, be);
        for (int i = 0; i < 4; ++i) video.segment(Image(64, 48, 2, 1).frame());
        CHECK(be->live_graphs() > 0);
        CHECK_EQ(video.last_times().masks, 1.f);
    }
    CHECK_EQ(be->memory.live_device(), size_t(0));
    CHECK_EQ(be->memory.live_host(), size_t(0));
    CHECK_EQ(be->live_graphs(), size_t(0));
    CHECK_EQ(be->streams_destroyed, 1);
    trtnet::Options o = opts();
    o.stream = reinterpret_cast<CUstream_st*>(0x1234);
    { trtnet::Segmenter seg(ws.engine("k.engine", "key"), o, be); }
    CHECK_EQ(be->streams_destroyed, 1);  // the caller's stream is the caller's
}

TEST(json_reader_handles_escapes_and_refuses_hostile_input) {
    trtnet::Json j = trtnet::Json::parse("{\"a\": [1, -2.5e1, true, null, \"\\u00e9\\ud83d\\ude00\\n\"]}");
    CHECK_EQ(j.get("a")->array[1].number, -25.0);
    CHECK_EQ(j.get("a")->array[4].string, std::string("\xc3\xa9\xf0\x9f\x98\x80\n"));
    bool refused = false;
    try {
        trtnet::Json::parse(std::string(100000, '['));
    } catch (std::invalid_argument const& e) {
        refused = std::string(e.what()).find("nested too deeply") != std::string::npos;
    }
    CHECK(refused);
    for (char const* bad : {"{\"a\": 1} x", "\"abc", "{\"a\" 1}", "[1,]", "-", "\"\\x\""}) {
        bool threw = false;
        try {
            trtnet::Json::parse(bad);
        } catch (std::invalid_argument const&) {
            threw = true;
        }
        CHECK(threw);
    }
    CHECK_EQ(trtnet::parse_tensorrt_version("10.3.0.26"), 100300);
    CHECK_EQ(trtnet::parse_tensorrt_version("11.1"), 110100);
    CHECK_EQ(trtnet::parse_tensorrt_version("x"), -1);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> wanted(argv + 1, argv + argc);
    if (wanted.size() == 1 && wanted[0] == "--list") {
        for (auto const& t : registry()) std::cout << t.first << "\n";
        return 0;
    }
    int failed = 0, ran = 0;
    for (auto const& t : registry()) {
        if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), t.first) == wanted.end()) continue;
        ++ran;
        try {
            t.second();
            std::cout << "ok   " << t.first << "\n";
        } catch (Failure const& f) {
            ++failed;
            std::cout << "FAIL " << t.first << ": " << f.what << "\n";
        } catch (std::exception const& e) {
            ++failed;
            std::cout << "FAIL " << t.first << ": unexpected exception: " << e.what() << "\n";
        }
    }
    if (ran == 0) {
        std::cout << "no test matched\n";
        return 2;
    }
    return failed == 0 ? 0 : 1;
}
