// One engine in the frame loop: its I/O by name, device buffers allocated once per shape
// (grown, never shrunk), inputs bound to other engines' buffers where asked (the keyframe
// state), and the enqueue captured as a CUDA graph per input shape.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"

namespace trtnet {

class EngineRunner {
public:
    // `source` names the engine in messages (its path).
    EngineRunner(Backend& backend, std::unique_ptr<EngineHandle> engine, std::string source, bool cuda_graphs);
    ~EngineRunner();
    EngineRunner(EngineRunner const&) = delete;
    EngineRunner& operator=(EngineRunner const&) = delete;

    std::string const& source() const { return source_; }
    TensorDesc const* find(std::string const& name) const;  // nullptr if absent
    bool has_input(std::string const& name) const;
    bool has_output(std::string const& name) const;
    std::vector<std::string> names(bool inputs) const;

    // (min, max) of the frame input's profile: Error(kFrameSize) naming the range when `shape`
    // ([B, H, W, 3]) is outside it.
    void check_in_profile(std::string const& input, Shape const& shape) const;
    Profile profile(std::string const& input) const;

    // Input shapes and externally owned input buffers (name -> device pointer). Cheap when
    // nothing changed; otherwise sets the shapes, grows the buffers, binds every address.
    void configure(std::map<std::string, Shape> const& shapes, std::map<std::string, void*> const& external = {});

    void* buffer(std::string const& name) const;  // bound device address of a tensor
    Shape const& shape(std::string const& name) const;
    DType type(std::string const& name) const;

    // Enqueues the engine: plainly the first time after any change, captured as a CUDA graph
    // the second time (Options::cuda_graphs), replayed from then on; a failed capture falls
    // back to a plain enqueue (with a warning, once per shape).
    void run(Stream stream);

    // For tests: how the last run() went.
    enum class LastRun { kNone, kPlain, kCaptured, kReplayed, kCaptureFailed };
    LastRun last_run() const { return last_run_; }

private:
    struct Slot {
        TensorDesc desc;
        Shape shape;
        void* owned = nullptr;
        size_t capacity = 0;
        void* bound = nullptr;
    };
    Slot& slot(std::string const& name);
    Slot const& slot(std::string const& name) const;
    void drop_graph();
    void plain_enqueue(Stream stream);

    Backend& backend_;
    std::unique_ptr<EngineHandle> engine_;
    std::string source_;
    bool cuda_graphs_;
    std::vector<Slot> slots_;
    bool configured_ = false;
    uint64_t generation_ = 0;          // bumped by every change of a shape or an address
    uint64_t last_run_generation_ = 0;  // generation of the previous run (0: none)
    void* graph_ = nullptr;
    uint64_t graph_generation_ = 0;
    uint64_t capture_failed_generation_ = 0;
    LastRun last_run_ = LastRun::kNone;
};

}  // namespace trtnet
