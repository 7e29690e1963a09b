// Segments one (black) frame with an installed trtnet; every failure is a trtnet::Error.
#include <trtnet/trtnet.h>

#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: consumer ENGINE\n");
        return 2;
    }
    try {
        trtnet::Options options;
        options.plugin_library = TRTNET_PLUGIN_LIBRARY;
        trtnet::Segmenter segmenter(argv[1], options);
        std::vector<unsigned char> frame(640 * 480 * 3, 0);
        trtnet::Instances found = segmenter.segment(trtnet::Frame::host(frame.data(), 640, 480));
        std::printf("%zu instances\n", found.size());
    } catch (trtnet::Error const& e) {
        std::fprintf(stderr, "error %d: %s\n", int(e.code()), e.what());
        return 1;
    }
    return 0;
}
