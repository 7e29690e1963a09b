// Example: detections of one image with a trtnet keyframe engine.
//   trtnet_detect ENGINE PLUGIN_LIBRARY IMAGE.ppm
// IMAGE is a binary PPM (P6, RGB, 8 bit) -- e.g. `convert photo.jpg photo.ppm` -- so the
// example needs no image library; it is reordered to BGR like cv2.imread gives.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "trtnet_runtime.h"

namespace {

class Logger : public nvinfer1::ILogger {
    void log(Severity severity, char const* msg) noexcept override {
        if (severity <= Severity::kWARNING) std::fprintf(stderr, "[TRT] %s\n", msg);
    }
};

bool read_ppm(std::string const& path, std::vector<uint8_t>& bgr, int& height, int& width) {
    std::ifstream f(path, std::ios::binary);
    std::string magic;
    int maxval = 0;
    if (!(f >> magic >> width >> height >> maxval) || magic != "P6" || maxval != 255) return false;
    f.get();
    bgr.resize(size_t(width) * height * 3);
    if (!f.read(reinterpret_cast<char*>(bgr.data()), std::streamsize(bgr.size()))) return false;
    for (size_t i = 0; i < bgr.size(); i += 3) std::swap(bgr[i], bgr[i + 2]);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s ENGINE PLUGIN_LIBRARY IMAGE.ppm\n", argv[0]);
        return 2;
    }
    std::vector<uint8_t> bgr;
    int height = 0, width = 0;
    if (!read_ppm(argv[3], bgr, height, width)) {
        std::fprintf(stderr, "cannot read %s as a binary 8-bit PPM (P6)\n", argv[3]);
        return 1;
    }
    try {
        Logger logger;
        trtnet::Engine engine(argv[1], argv[2], logger);
        cudaStream_t stream = nullptr;
        cudaStreamCreate(&stream);
        auto detections = engine.detect(bgr.data(), height, width, stream);
        for (auto const& d : detections) {
            std::printf("class %3d score %.3f box %.1f %.1f %.1f %.1f\n", d.cls, d.score, d.x1 * width, d.y1 * height,
                        d.x2 * width, d.y2 * height);
        }
        cudaStreamDestroy(stream);
    } catch (std::exception const& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
