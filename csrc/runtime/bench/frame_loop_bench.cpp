// Host cost of the C++ frame loop in steady state, over the fake backend (no GPU): what
// Segmenter / VideoSegmenter::segment() itself costs the CPU per frame -- validation,
// scheduling, staging, readback bookkeeping, postprocess, mask job setup -- with the fake's
// own work kept out of the way (uploads move one row, masks are not painted, nothing is
// logged). For `python -m trtnet.bench runtime`; prints one JSON line:
//
//   {"bench": "cpp_frame_loop", "mode": "image", "memory": "device", "width": 640, "height": 480,
//    "detections": 5, "frames": 2000, "median_us": ..., "p99_us": ..., "max_us": ...,
//    "cuda_allocs_per_frame": 0, "host_waits_per_frame": 1, "heap_allocs_per_frame": ...,
//    "target": {"median_us": 30, "cuda_allocs_per_frame": 0, "host_waits_per_frame": 1}, "pass": true}
//
// cuda_allocs: cudaMalloc + cudaMallocHost calls the runtime made; host_waits: stream or
// event synchronisations (the one wait for the detections); heap_allocs: operator new calls
// in segment() (std::vector / std::string of the results: information, not a target).
// Exit code 0 when every target is met, 1 when one is not, 2 on bad usage.
//
//   frame_loop_bench [--frames N] [--warmup N] [--width W] [--height H] [--detections N]
//                    [--memory host|device] [--mode image|video] [--no-graphs] [--batch N]
//
// --batch N: N cameras' frames of one size per segment() call (one engine run, one wait).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "../tests/fake_backend.h"
#include "trtnet.h"

namespace {
std::atomic<int64_t> g_heap_allocs{0};
}  // namespace

// Counting replacements of the global operator new / delete (malloc / free underneath; GCC
// cannot see that the pair matches when it inlines them into the standard containers).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(size_t bytes) {
    g_heap_allocs.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace {

constexpr double kTargetMedianUs = 30.0;

struct Args {
    int frames = 2000, warmup = 50, width = 640, height = 480, detections = 5, batch = 1;
    bool device = true, video = false, graphs = true;
};

int usage(char const* problem) {
    std::fprintf(stderr, "frame_loop_bench: %s\nusage: frame_loop_bench [--frames N] [--warmup N] [--width W] "
                         "[--height H] [--detections N (0..8)] [--memory host|device] [--mode image|video] "
                         "[--no-graphs] [--batch N (1..8)]\n", problem);
    return 2;
}

bool parse_int(char const* text, int lo, int hi, int& out) {
    char* end = nullptr;
    long v = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < lo || v > hi) return false;
    out = int(v);
    return true;
}

void write(std::string const& path, std::string const& text) {
    FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
}

// A fake engine file ("FAKE role", fake_backend.h) and its sidecar.
std::string engine(std::string const& dir, std::string const& name, std::string const& role, int batch) {
    std::string path = dir + "/" + name;
    write(path, "FAKE " + role + " batch=" + std::to_string(batch) + "\n" + std::string(300, '\0'));
    write(path + ".json", "{\"format\": \"trtnet-engine-sidecar/1\", \"config\": \"yolact_edge_mobilenetv2_config\", "
                          "\"tensorrt_version\": \"10.3.0.26\", \"plugin_library\": null, "
                          "\"gpu\": {\"compute_capability\": \"8.7\"}, \"classes\": [\"person\", \"car\"]}");
    return path;
}

}  // namespace

int main(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        std::string k = argv[i];
        if (k == "--help" || k == "-h") {
            usage("host cost per frame of the C++ runtime over the fake backend");
            return 0;
        }
        if (k == "--no-graphs") {
            a.graphs = false;
            continue;
        }
        if (i + 1 >= argc) return usage((k + " needs a value").c_str());
        char const* v = argv[++i];
        bool ok = k == "--frames"       ? parse_int(v, 1, 10000000, a.frames)
                  : k == "--warmup"     ? parse_int(v, 2, 1000000, a.warmup)
                  : k == "--width"      ? parse_int(v, fake::kMinSide, fake::kMaxSide, a.width)
                  : k == "--height"     ? parse_int(v, fake::kMinSide, fake::kMaxSide, a.height)
                  : k == "--detections" ? parse_int(v, 0, 8, a.detections)
                  : k == "--batch"      ? parse_int(v, 1, 8, a.batch)
                  : k == "--memory"     ? (a.device = std::string(v) == "device", std::string(v) == "device" || std::string(v) == "host")
                  : k == "--mode"       ? (a.video = std::string(v) == "video", std::string(v) == "video" || std::string(v) == "image")
                                        : false;
        if (!ok) return usage(("bad option or value: " + k + " " + v).c_str());
    }

    char tmpl[] = "/tmp/trtnet_frame_loop_bench_XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return usage("cannot create a temporary folder");
    std::string dir = tmpl;
    write(dir + "/libtrtnet_plugins.so", "fake");
    auto be = std::make_shared<fake::FakeBackend>();
    be->touch_data = false;
    be->record_mask_jobs = false;
    be->log.enabled = false;

    std::vector<uint8_t> pixels(size_t(a.width) * size_t(a.height) * 3, 0);
    pixels[0] = uint8_t(a.detections), pixels[1] = 1;
    void* device = nullptr;
    if (a.device) {
        device = be->device_alloc(pixels.size());
        std::copy(pixels.begin(), pixels.end(), static_cast<uint8_t*>(device));
    }
    trtnet::Frame frame = a.device ? trtnet::Frame::device(device, a.width, a.height)
                                   : trtnet::Frame::host(pixels.data(), a.width, a.height);
    std::vector<trtnet::Frame> cameras(size_t(a.batch), frame);  // made once: not the loop's cost
    std::vector<double> us;
    us.reserve(size_t(a.frames));
    int64_t allocs = 0, waits = 0, heap = 0;
    size_t found = 0;
    int status = 0;
    try {
        auto run = [&](auto& segmenter) {
            auto once = [&]() -> size_t {
                if (a.batch == 1) return segmenter.segment(frame).size();
                return segmenter.segment(cameras).back().size();
            };
            for (int i = 0; i < a.warmup; ++i) found = once();  // buffers, graph capture
            int64_t a0 = be->device_allocs + be->host_allocs, w0 = be->host_waits, h0 = g_heap_allocs.load();
            for (int i = 0; i < a.frames; ++i) {
                auto t0 = std::chrono::steady_clock::now();
                size_t n = once();
                auto t1 = std::chrono::steady_clock::now();
                found = n;
                us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
            }
            allocs = be->device_allocs + be->host_allocs - a0, waits = be->host_waits - w0;
            heap = g_heap_allocs.load() - h0;
        };
        trtnet::VideoOptions o;
        o.cuda_graphs = a.graphs;
        if (a.video) {
            trtnet::VideoSegmenter seg(engine(dir, "key.engine", "videokey", a.batch),
                                       engine(dir, "nonkey.engine", "nonkey", a.batch), o, be);
            run(seg);
        } else {
            trtnet::Segmenter seg(engine(dir, "key.engine", "key", a.batch), o, be);
            run(seg);
        }
    } catch (std::exception const& e) {
        std::fprintf(stderr, "frame_loop_bench: %s\n", e.what());
        status = 1;
    }
    if (device != nullptr) be->device_free(device);
    std::system(("rm -rf '" + dir + "'").c_str());
    if (status != 0) return status;

    std::vector<double> sorted = us;
    std::sort(sorted.begin(), sorted.end());
    auto pct = [&](double q) { return sorted[std::min(sorted.size() - 1, size_t(q * double(sorted.size() - 1) + 0.5))]; };
    double n = double(a.frames);
    double median = pct(0.5), p99 = pct(0.99);
    double allocs_pf = double(allocs) / n, waits_pf = double(waits) / n, heap_pf = double(heap) / n;
    // Every segment() waits once for the detections; video mode too (keyframes and non-keyframes).
    bool pass = median <= kTargetMedianUs && allocs == 0 && waits == int64_t(a.frames) &&
                found == size_t(a.detections);
    std::printf("{\"bench\": \"cpp_frame_loop\", \"mode\": \"%s\", \"memory\": \"%s\", \"cuda_graphs\": %s, "
                "\"batch\": %d, \"width\": %d, \"height\": %d, \"detections\": %zu, \"frames\": %d, \"median_us\": %.2f, "
                "\"p99_us\": %.2f, \"max_us\": %.2f, \"cuda_allocs_per_frame\": %.3f, \"host_waits_per_frame\": %.3f, "
                "\"heap_allocs_per_frame\": %.2f, \"target\": {\"median_us\": %.0f, \"cuda_allocs_per_frame\": 0, "
                "\"host_waits_per_frame\": 1}, \"pass\": %s}\n",
                a.video ? "video" : "image", a.device ? "device" : "host", a.graphs ? "true" : "false", a.batch, a.width,
                a.height, found, a.frames, median, p99, sorted.back(), allocs_pf, waits_pf, heap_pf, kTargetMedianUs,
                pass ? "true" : "false");
    return pass ? 0 : 1;
}
