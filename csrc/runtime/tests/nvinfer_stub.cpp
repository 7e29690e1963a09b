// A stand-in libnvinfer.so for link tests (tests/test_runtime_cpp.py): the entry points of
// TensorRT that the runtime calls and the headers do not define inline. It runs nothing:
// createInferRuntime_INTERNAL returns nullptr, so a program linked against it stops with
// "TensorRT could not create a runtime". Never evidence that an engine ran.
#include <NvInferRuntime.h>

extern "C" TENSORRTAPI void* createInferRuntime_INTERNAL(void*, int32_t) noexcept { return nullptr; }
extern "C" TENSORRTAPI int32_t getInferLibVersion() noexcept { return NV_TENSORRT_VERSION; }
