// trtnet_segment: the C++ runtime on a video, a folder of images, a camera or one image,
// writing an overlay (masks tinted per class, boxes) and printing fps per stage.
// Flags as python -m trtnet.infer. With OpenCV (found by CMake) any video/image format and
// cameras; without it, binary PPM (P6) images only, so the example has no dependency.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <stdexcept>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>

#ifdef TRTNET_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#endif

#include "trtnet.h"

namespace {

char const* kUsage =
    "usage: trtnet_segment --engine KEY.engine [--nonkey-engine NONKEY.engine] -o OUTPUT SOURCE\n"
    "\n"
    "Instance segmentation with trtnet engines (python -m trtnet.build) from C++.\n"
    "\n"
    "SOURCE   an image, a folder of images, a video file or a camera index"
#ifndef TRTNET_WITH_OPENCV
    " (this build has no OpenCV: binary PPM images or a folder of them)"
#endif
    "\n"
    "options:\n"
    "  -o, --output PATH          overlay: a video for a video/camera, a folder for a folder, an image for an image\n"
    "  --engine FILE              keyframe engine (its sidecar FILE.json beside it)\n"
    "  --nonkey-engine FILE       non-keyframe engine: video mode (VideoSegmenter)\n"
    "  --plugin-library FILE      libtrtnet_plugins.so (default: beside the engine)\n"
    "  --score-threshold S        keep detections scoring above S (default 0.3)\n"
    "  --max-drawn N              at most N detections per frame, best first (default 15)\n"
    "  --keyframe-interval N      video: the first of every N frames is a keyframe (default 5)\n"
    "  --adaptive-keyframes       video: a keyframe after a frame that moved more than --motion-threshold\n"
    "  --motion-threshold M       (default 0.3)\n"
    "  --max-frames N             stop after N frames\n"
    "  -h, --help                 this text\n"
    "\n"
    "examples:\n"
    "  trtnet_segment --engine yolact_edge.engine -o out.ppm photo.ppm\n"
    "  trtnet_segment --engine key.engine --nonkey-engine nonkey.engine -o overlay.mp4 clip.mp4\n"
    "  trtnet_segment --engine key.engine --nonkey-engine nonkey.engine -o live.mp4 --max-frames 300 0\n"
    "\n"
    "exit codes: 0 ok, 1 failure, 2 usage error\n";

struct Args {
    std::string source, output, engine, nonkey, plugins;
    float score = 0.3f, motion = 0.3f;
    int max_drawn = 15, interval = 5;
    long max_frames = -1;
    bool adaptive = false;
};

[[noreturn]] void usage_error(std::string const& message) {
    std::fprintf(stderr, "trtnet_segment: error: %s\n(see trtnet_segment --help)\n", message.c_str());
    std::exit(2);
}

double number(std::string const& flag, char const* text) {
    char* end = nullptr;
    double v = std::strtod(text, &end);
    if (end == text || *end != '\0') usage_error(flag + ": '" + text + "' is not a number");
    return v;
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        std::string flag = argv[i];
        auto value = [&]() -> char const* {
            if (i + 1 >= argc) usage_error(flag + " needs a value");
            return argv[++i];
        };
        if (flag == "-h" || flag == "--help") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        } else if (flag == "-o" || flag == "--output") a.output = value();
        else if (flag == "--engine") a.engine = value();
        else if (flag == "--nonkey-engine") a.nonkey = value();
        else if (flag == "--plugin-library") a.plugins = value();
        else if (flag == "--score-threshold") a.score = float(number(flag, value()));
        else if (flag == "--max-drawn") a.max_drawn = int(number(flag, value()));
        else if (flag == "--keyframe-interval") a.interval = int(number(flag, value()));
        else if (flag == "--adaptive-keyframes") a.adaptive = true;
        else if (flag == "--motion-threshold") a.motion = float(number(flag, value()));
        else if (flag == "--max-frames") a.max_frames = long(number(flag, value()));
        else if (!flag.empty() && flag[0] == '-' && flag.size() > 1) usage_error("unknown option " + flag);
        else if (a.source.empty()) a.source = flag;
        else usage_error("more than one SOURCE given ('" + a.source + "', '" + flag + "')");
    }
    if (a.engine.empty()) usage_error("--engine is required");
    if (a.output.empty()) usage_error("-o/--output is required");
    if (a.source.empty()) usage_error("SOURCE is required");
    if (a.interval < 1) usage_error("--keyframe-interval must be >= 1");
    if (a.max_drawn < 0) usage_error("--max-drawn must be >= 0");
    if (a.adaptive && a.nonkey.empty()) usage_error("--adaptive-keyframes needs --nonkey-engine");
    return a;
}

bool is_directory(std::string const& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool ends_with(std::string const& s, std::string const& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::vector<std::string> folder_images(std::string const& dir, std::vector<std::string> const& extensions) {
    std::vector<std::string> files;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d)) {
            std::string name = e->d_name;
            for (auto const& ext : extensions) {
                if (ends_with(lower(name), ext)) files.push_back(dir + "/" + name);
            }
        }
        closedir(d);
    }
    std::sort(files.begin(), files.end());
    return files;
}

#ifndef TRTNET_WITH_OPENCV
// A BGR8 image in host memory.
struct Image {
    int width = 0, height = 0;
    std::vector<uint8_t> bgr;
};

// Binary PPM (P6, maxval 255) <-> BGR.
bool read_ppm(std::string const& path, Image& img, std::string& error) {
    std::ifstream f(path, std::ios::binary);
    std::string magic;
    int maxval = 0;
    if (!f) {
        error = "cannot open " + path;
        return false;
    }
    if (!(f >> magic >> img.width >> img.height >> maxval) || magic != "P6" || maxval != 255 || img.width <= 0 ||
        img.height <= 0 || img.width > 65536 || img.height > 65536) {
        error = path + " is not a binary 8-bit PPM (P6, maxval 255)";
        return false;
    }
    f.get();
    img.bgr.resize(size_t(img.width) * size_t(img.height) * 3);
    if (!f.read(reinterpret_cast<char*>(img.bgr.data()), std::streamsize(img.bgr.size()))) {
        error = path + " is truncated";
        return false;
    }
    for (size_t i = 0; i < img.bgr.size(); i += 3) std::swap(img.bgr[i], img.bgr[i + 2]);
    return true;
}

bool write_ppm(std::string const& path, Image const& img) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary);
        if (!f) return false;
        f << "P6\n" << img.width << " " << img.height << "\n255\n";
        std::vector<uint8_t> rgb(img.bgr);
        for (size_t i = 0; i < rgb.size(); i += 3) std::swap(rgb[i], rgb[i + 2]);
        if (!f.write(reinterpret_cast<char const*>(rgb.data()), std::streamsize(rgb.size()))) return false;
    }
    return std::rename(tmp.c_str(), path.c_str()) == 0;  // complete or absent, never half-written
}
#endif

// Masks tinted per class at 45 %, boxes one pixel wide: the overlay of python -m trtnet.infer.
void draw(uint8_t* bgr, size_t pitch, trtnet::Instances const& found) {
    if (found.empty()) return;
    std::vector<uint8_t> masks = found.masks_to_host();
    int w = found.width(), h = found.height();
    for (size_t d = 0; d < found.size(); ++d) {
        unsigned hash = unsigned(found[d].class_id) * 2654435761u;
        uint8_t color[3] = {uint8_t(hash >> 8), uint8_t(hash >> 16), uint8_t(hash >> 24)};
        uint8_t const* mask = masks.data() + d * size_t(w) * size_t(h);
        for (int y = 0; y < h; ++y) {
            for (int x = 0; x < w; ++x) {
                if (!mask[size_t(y) * size_t(w) + size_t(x)]) continue;
                uint8_t* p = bgr + size_t(y) * pitch + size_t(x) * 3;
                for (int c = 0; c < 3; ++c) p[c] = uint8_t((p[c] * 55 + color[c] * 45) / 100);
            }
        }
        trtnet::Box b = found[d].box;
        for (int64_t x = b.x1; x < b.x2; ++x) {
            for (int64_t y : {b.y1, b.y2 - 1}) {
                if (y >= 0 && y < h) std::memcpy(bgr + size_t(y) * pitch + size_t(x) * 3, color, 3);
            }
        }
        for (int64_t y = b.y1; y < b.y2; ++y) {
            for (int64_t x : {b.x1, b.x2 - 1}) {
                if (x >= 0 && x < w) std::memcpy(bgr + size_t(y) * pitch + size_t(x) * 3, color, 3);
            }
        }
    }
}

// Keyframe engine alone (images) or both engines (video), behind one call.
class Runner {
public:
    explicit Runner(Args const& a) {
        trtnet::VideoOptions o;
        o.score_threshold = a.score;
        o.top_k = a.max_drawn;
        o.plugin_library = a.plugins;
        o.timing = true;
        o.keyframe_interval = a.interval;
        o.motion_threshold = a.adaptive ? a.motion : -1.f;
        if (a.nonkey.empty()) {
            image_ = std::make_unique<trtnet::Segmenter>(a.engine, o);
        } else {
            video_ = std::make_unique<trtnet::VideoSegmenter>(a.engine, a.nonkey, o);
        }
    }
    trtnet::Instances segment(trtnet::Frame const& f) {
        trtnet::Instances found = image_ ? image_->segment(f) : video_->segment(f);
        trtnet::StageTimes t = image_ ? image_->last_times() : video_->last_times();
        totals_.upload += t.upload, totals_.network += t.network, totals_.postprocess += t.postprocess;
        totals_.masks += t.masks;
        keyframes_ += image_ || video_->last_was_keyframe();
        ++frames_;
        return found;
    }
    void report(double seconds) const {
        if (frames_ == 0) return;
        auto fps = [&](float total) { return total > 0 ? 1000.0 * double(frames_) / double(total) : 0.0; };
        std::printf("%ld frames (%ld keyframes) in %.2f s: %.1f fps end to end\n", frames_, keyframes_, seconds,
                    double(frames_) / seconds);
        std::printf("per stage (GPU time, CUDA events): upload %.2f ms (%.0f fps), network %.2f ms (%.0f fps), "
                    "postprocess %.2f ms (%.0f fps), masks %.2f ms (%.0f fps)\n",
                    totals_.upload / frames_, fps(totals_.upload), totals_.network / frames_, fps(totals_.network),
                    totals_.postprocess / frames_, fps(totals_.postprocess), totals_.masks / frames_, fps(totals_.masks));
    }
    long frames() const { return frames_; }

private:
    std::unique_ptr<trtnet::Segmenter> image_;
    std::unique_ptr<trtnet::VideoSegmenter> video_;
    trtnet::StageTimes totals_;
    long frames_ = 0, keyframes_ = 0;
};

#ifdef TRTNET_WITH_OPENCV
int run_opencv(Args const& a, Runner& runner) {
    std::vector<std::string> images;
    cv::VideoCapture capture;
    bool folder = is_directory(a.source);
    bool camera = !a.source.empty() && a.source.find_first_not_of("0123456789") == std::string::npos;
    if (folder) {
        images = folder_images(a.source, {".jpg", ".jpeg", ".png", ".bmp", ".ppm"});
        if (images.empty()) throw std::runtime_error("no images in folder " + a.source);
        if (!is_directory(a.output)) throw std::runtime_error("output folder " + a.output + " does not exist");
    } else if (camera ? !capture.open(std::atoi(a.source.c_str())) : false) {
        throw std::runtime_error("cannot open camera " + a.source);
    } else if (!camera) {
        cv::Mat probe = cv::imread(a.source, cv::IMREAD_COLOR);
        if (!probe.empty()) images = {a.source};
        else if (!capture.open(a.source)) throw std::runtime_error("cannot read " + a.source + " as an image or a video");
    }
    cv::VideoWriter writer;
    size_t next = 0;
    for (;;) {
        if (a.max_frames >= 0 && runner.frames() >= a.max_frames) break;
        cv::Mat frame;
        std::string name;
        if (!images.empty()) {
            if (next >= images.size()) break;
            name = images[next++];
            frame = cv::imread(name, cv::IMREAD_COLOR);
            if (frame.empty()) throw std::runtime_error("cannot read image " + name);
        } else if (!capture.read(frame) || frame.empty()) {
            break;
        }
        trtnet::Instances found = runner.segment(trtnet::Frame::host(frame.data, frame.cols, frame.rows, frame.step));
        draw(frame.data, frame.step, found);
        if (folder) {
            std::string out = a.output + "/" + name.substr(name.find_last_of('/') + 1);
            if (!cv::imwrite(out, frame)) throw std::runtime_error("cannot write " + out);
        } else if (!images.empty()) {
            if (!cv::imwrite(a.output, frame)) throw std::runtime_error("cannot write " + a.output);
        } else {
            if (!writer.isOpened()) {
                double fps = capture.get(cv::CAP_PROP_FPS);
                int fourcc = ends_with(lower(a.output), ".avi") ? cv::VideoWriter::fourcc('M', 'J', 'P', 'G')
                                                               : cv::VideoWriter::fourcc('m', 'p', '4', 'v');
                if (!writer.open(a.output, fourcc, fps > 0 ? fps : 30.0, frame.size())) {
                    throw std::runtime_error("cannot write video " + a.output);
                }
            }
            writer.write(frame);
        }
    }
    return 0;
}
#endif

#ifndef TRTNET_WITH_OPENCV
int run_ppm(Args const& a, Runner& runner) {
    bool folder = is_directory(a.source);
    std::vector<std::string> inputs = folder ? folder_images(a.source, {".ppm"}) : std::vector<std::string>{a.source};
    if (inputs.empty()) throw std::runtime_error("no .ppm images in folder " + a.source);
    if (folder && !is_directory(a.output)) throw std::runtime_error("output folder " + a.output + " does not exist");
    for (std::string const& path : inputs) {
        if (a.max_frames >= 0 && runner.frames() >= a.max_frames) break;
        Image img;
        std::string error;
        if (!read_ppm(path, img, error)) throw std::runtime_error(error);
        trtnet::Instances found = runner.segment(trtnet::Frame::host(img.bgr.data(), img.width, img.height));
        for (auto const& d : found) {
            std::printf("%s: %s (class %d) %.3f mask %.3f box %lld %lld %lld %lld\n", path.c_str(),
                        d.class_name.c_str(), d.class_id, d.score, d.mask_score, (long long)d.box.x1, (long long)d.box.y1, (long long)d.box.x2,
                        (long long)d.box.y2);
        }
        draw(img.bgr.data(), size_t(img.width) * 3, found);
        std::string out = folder ? a.output + "/" + path.substr(path.find_last_of('/') + 1) : a.output;
        if (!write_ppm(out, img)) throw std::runtime_error("cannot write " + out);
    }
    return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
    Args a = parse(argc, argv);
    std::printf("trtnet_segment: %s%s%s -> %s (score > %.2f, at most %d per frame%s)\n", a.source.c_str(),
                a.nonkey.empty() ? " with " : " with video engines ", a.engine.c_str(), a.output.c_str(), a.score,
                a.max_drawn, a.nonkey.empty() ? "" : (", keyframe every " + std::to_string(a.interval)).c_str());
    auto start = std::chrono::steady_clock::now();
    bool camera = a.source.find_first_not_of("0123456789") == std::string::npos;
    struct stat st {};
    if (!camera && stat(a.source.c_str(), &st) != 0) {  // before the engines load: a typo fails fast
        std::fprintf(stderr, "trtnet_segment: SOURCE %s not found\n", a.source.c_str());
        return 1;
    }
    try {
        Runner runner(a);
#ifdef TRTNET_WITH_OPENCV
        int rc = run_opencv(a, runner);
#else
        int rc = run_ppm(a, runner);
#endif
        double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        runner.report(seconds);
        std::printf("done in %.2f s\n", seconds);
        return rc;
    } catch (std::exception const& e) {
        std::fprintf(stderr, "trtnet_segment: %s\n", e.what());
        return 1;
    }
}
