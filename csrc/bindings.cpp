// trtnet._C: the plugins' CPU twins on NumPy arrays and, when built with CUDA, their
// launchers on raw device pointers (CuPy's .data.ptr) and a stream handle.
//
// The twins are what the emulator runs for the plugin layers; the launchers let tests
// and benchmarks run the same kernels TensorRT runs, without TensorRT.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "common/hd.h"
#include "fast_nms/fast_nms.h"
#include "inverse_warp/inverse_warp.h"
#include "mask_assembly_host.h"
#ifdef TRTNET_WITH_CUDA
#include "mask_assembly.h"
#endif

namespace py = pybind11;

namespace {

enum class Kind { kFloat32, kFloat16 };

Kind kind_of(py::array const& a, char const* what) {
    if (a.dtype().is(py::dtype::of<float>())) return Kind::kFloat32;
    if (a.dtype().is(py::dtype("float16"))) return Kind::kFloat16;
    throw py::type_error(std::string(what) + ": expected a float32 or float16 array, got dtype " +
                         std::string(py::str(a.dtype())));
}

// C-contiguous view (a copy only when needed), dtype unchanged.
py::array contiguous(py::object const& obj, char const* what) {
    py::array a = py::array::ensure(obj);
    if (!a) throw py::type_error(std::string(what) + ": expected an array");
    if (!(a.flags() & py::array::c_style)) {
        a = py::module_::import("numpy").attr("ascontiguousarray")(a).cast<py::array>();
    }
    return a;
}

std::string shape_str(py::array const& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

py::array inverse_warp_host(py::object feature_obj, py::object flow_obj, py::object scale_obj, py::object bias_obj,
                            float flow_divisor) {
    py::array feature = contiguous(feature_obj, "feature");
    py::array flow = contiguous(flow_obj, "flow");
    const Kind kind = kind_of(feature, "feature");
    if (feature.ndim() != 4) throw py::value_error("feature must be [N, C, H, W], got shape " + shape_str(feature));
    const int n = int(feature.shape(0)), c = int(feature.shape(1)), h = int(feature.shape(2)), w = int(feature.shape(3));
    if (kind_of(flow, "flow") != kind) throw py::type_error("flow must have the dtype of feature");
    if (flow.ndim() != 4 || flow.shape(0) != n || flow.shape(1) != 2 || flow.shape(2) != h || flow.shape(3) != w)
        throw py::value_error("flow must be [N, 2, H, W] = (" + std::to_string(n) + ", 2, " + std::to_string(h) + ", " +
                              std::to_string(w) + "), got " + shape_str(flow));
    trtnet::warp::Shape s{n, c, h, w, 1, 1, 1, 1};
    py::array scale, bias;
    auto param = [&](py::object const& obj, char const* what, py::array& out, int& pn, int& pc) {
        if (obj.is_none()) return;
        out = contiguous(obj, what);
        if (kind_of(out, what) != kind) throw py::type_error(std::string(what) + " must have the dtype of feature");
        if (out.ndim() != 4 || (out.shape(0) != 1 && out.shape(0) != n) || (out.shape(1) != 1 && out.shape(1) != c) ||
            out.shape(2) != h || out.shape(3) != w)
            throw py::value_error(std::string(what) + " must be [N or 1, C or 1, H, W] for feature " +
                                  shape_str(feature) + ", got " + shape_str(out));
        pn = int(out.shape(0));
        pc = int(out.shape(1));
    };
    param(scale_obj, "scale", scale, s.scale_n, s.scale_c);
    param(bias_obj, "bias", bias, s.bias_n, s.bias_c);
    const char* problem = trtnet::warp::inverse_warp_check(s, flow_divisor);
    if (*problem) throw py::value_error(std::string("inverse_warp: ") + problem);
    py::array out(feature.dtype(), std::vector<py::ssize_t>{n, c, h, w});
    const auto dtype = kind == Kind::kFloat32 ? trtnet::warp::DType::kFloat32 : trtnet::warp::DType::kFloat16;
    const void* sp = scale_obj.is_none() ? nullptr : scale.data();
    const void* bp = bias_obj.is_none() ? nullptr : bias.data();
    {
        py::gil_scoped_release release;
        trtnet::warp::inverse_warp_host(dtype, s, flow_divisor, feature.data(), flow.data(), sp, bp, out.mutable_data());
    }
    return out;
}

trtnet::nms::Settings settings(int top_k, float conf_thresh, float nms_thresh, int max_det, int background_class) {
    trtnet::nms::Settings s;
    s.top_k = top_k;
    s.conf_thresh = conf_thresh;
    s.nms_thresh = nms_thresh;
    s.max_det = max_det;
    s.background_class = background_class;
    return s;
}

py::tuple fast_nms_host(py::object boxes_obj, py::object scores_obj, py::object coeffs_obj, int top_k,
                        float conf_thresh, float nms_thresh, int max_det, int background_class) {
    py::array boxes = contiguous(boxes_obj, "boxes");
    py::array scores = contiguous(scores_obj, "scores");
    py::array coeffs = contiguous(coeffs_obj, "coeffs");
    const Kind kind = kind_of(boxes, "boxes");
    if (kind_of(scores, "scores") != kind || kind_of(coeffs, "coeffs") != kind)
        throw py::type_error("boxes, scores and coeffs must have one dtype");
    if (boxes.ndim() != 3 || boxes.shape(2) != 4) throw py::value_error("boxes must be [N, A, 4], got " + shape_str(boxes));
    const int n = int(boxes.shape(0)), a = int(boxes.shape(1));
    if (scores.ndim() != 3 || scores.shape(0) != n || scores.shape(1) != a)
        throw py::value_error("scores must be [N, A, C] with N, A of boxes, got " + shape_str(scores));
    if (coeffs.ndim() != 3 || coeffs.shape(0) != n || coeffs.shape(1) != a)
        throw py::value_error("coeffs must be [N, A, K] with N, A of boxes, got " + shape_str(coeffs));
    const int c = int(scores.shape(2)), k = int(coeffs.shape(2));
    const auto s = settings(top_k, conf_thresh, nms_thresh, max_det, background_class);
    const char* problem = trtnet::nms::fast_nms_check(n, a, c, k, s);
    if (*problem) throw py::value_error(std::string("fast_nms: ") + problem);

    py::array_t<int32_t> count(std::vector<py::ssize_t>{n});
    py::array out_boxes(boxes.dtype(), std::vector<py::ssize_t>{n, max_det, 4});
    py::array out_scores(boxes.dtype(), std::vector<py::ssize_t>{n, max_det});
    py::array_t<int32_t> out_classes(std::vector<py::ssize_t>{n, max_det});
    py::array out_coeffs(boxes.dtype(), std::vector<py::ssize_t>{n, max_det, k});
    trtnet::nms::Tensors t{boxes.data(), scores.data(), coeffs.data(), count.mutable_data(), out_boxes.mutable_data(),
                           out_scores.mutable_data(), out_classes.mutable_data(), out_coeffs.mutable_data()};
    const auto dtype = kind == Kind::kFloat32 ? trtnet::nms::DType::kFloat32 : trtnet::nms::DType::kFloat16;
    {
        py::gil_scoped_release release;
        trtnet::nms::fast_nms_host(dtype, n, a, c, k, s, t);
    }
    return py::make_tuple(count, out_boxes, out_scores, out_classes, out_coeffs);
}

namespace masks = trtnet::masks;

masks::DType mask_dtype(Kind k) { return k == Kind::kFloat32 ? masks::DType::kFloat32 : masks::DType::kFloat16; }

// protos [Hp, Wp, K] or [1, Hp, Wp, K]; coeffs [D, K]; boxes [D, 4] (coeffs' dtype).
masks::MaskAssemblyArgs mask_inputs(py::array const& protos, py::array const& coeffs, py::array const& boxes) {
    masks::MaskAssemblyArgs a;
    const py::ssize_t skip = protos.ndim() == 4 ? 1 : 0;
    if (protos.ndim() < 3 || protos.ndim() > 4 || (skip && protos.shape(0) != 1))
        throw py::value_error("protos must be [Hp, Wp, K] or [1, Hp, Wp, K] (NHWC, one image), got " + shape_str(protos));
    a.protoH = int(protos.shape(skip));
    a.protoW = int(protos.shape(skip + 1));
    a.numProtos = int(protos.shape(skip + 2));
    a.protoType = mask_dtype(kind_of(protos, "protos"));
    const Kind det = kind_of(coeffs, "coeffs");
    if (kind_of(boxes, "boxes") != det) throw py::type_error("boxes must have the dtype of coeffs");
    a.detType = mask_dtype(det);
    if (coeffs.ndim() != 2 || coeffs.shape(1) != a.numProtos)
        throw py::value_error("coeffs must be [D, " + std::to_string(a.numProtos) + "], got " + shape_str(coeffs));
    if (boxes.ndim() != 2 || boxes.shape(0) != coeffs.shape(0) || boxes.shape(1) != 4)
        throw py::value_error("boxes must be [D, 4] with D of coeffs, got " + shape_str(boxes));
    a.numDetections = int(coeffs.shape(0));
    a.protos = protos.data();
    a.coeffs = coeffs.data();
    a.boxes = boxes.data();
    return a;
}

std::optional<int32_t> count_value(py::object const& count) {
    if (count.is_none()) return std::nullopt;
    py::array c = py::array::ensure(count);
    if (!c || c.size() != 1) throw py::value_error("count must be one integer");
    const long long v = py::int_(c.attr("item")()).cast<long long>();
    return int32_t(std::clamp<long long>(v, -1, INT32_MAX));
}

py::array assemble_masks_host(py::object protos_obj, py::object coeffs_obj, py::object boxes_obj,
                              std::vector<int> frame_hw, py::object count_obj, float threshold, bool crop,
                              std::string const& output) {
    py::array protos = contiguous(protos_obj, "protos"), coeffs = contiguous(coeffs_obj, "coeffs"),
              boxes = contiguous(boxes_obj, "boxes");
    masks::MaskAssemblyArgs a = mask_inputs(protos, coeffs, boxes);
    if (frame_hw.size() != 2) throw py::value_error("frame_hw must be (height, width)");
    if (output != "mask" && output != "prob") throw py::value_error("output must be 'mask' or 'prob', got '" + output + "'");
    const std::optional<int32_t> count = count_value(count_obj);
    a.count = count ? &*count : nullptr;
    a.frameH = frame_hw[0];
    a.frameW = frame_hw[1];
    a.threshold = threshold;
    a.crop = crop;
    a.output = output == "mask" ? masks::Output::kMaskU8 : masks::Output::kProbF32;
    const std::size_t elem = output == "mask" ? 1 : 4;
    a.rowPitch = std::size_t(a.frameW > 0 ? a.frameW : 0) * elem;
    a.maskPitch = a.rowPitch * std::size_t(a.frameH > 0 ? a.frameH : 0);
    const int n = count ? std::clamp<int>(*count, 0, std::max(a.numDetections, 0)) : a.numDetections;
    py::array out = output == "mask" ? py::array(py::dtype::of<uint8_t>(), std::vector<py::ssize_t>{n, a.frameH, a.frameW})
                                     : py::array(py::dtype::of<float>(), std::vector<py::ssize_t>{n, a.frameH, a.frameW});
    a.out = out.mutable_data();
    const char* problem = masks::checkArgs(a);
    if (*problem) throw py::value_error(std::string("assemble_masks: ") + problem);
    {
        py::gil_scoped_release release;
        masks::assembleHost(a);
    }
    return out;
}

py::array lowres_masks_host(py::object protos_obj, py::object coeffs_obj, py::object boxes_obj, bool crop) {
    py::array protos = contiguous(protos_obj, "protos"), coeffs = contiguous(coeffs_obj, "coeffs"),
              boxes = contiguous(boxes_obj, "boxes");
    masks::MaskAssemblyArgs a = mask_inputs(protos, coeffs, boxes);
    a.crop = crop;
    py::array_t<float> out(std::vector<py::ssize_t>{a.numDetections, a.protoH, a.protoW});
    a.frameH = a.frameW = 1;
    a.out = out.mutable_data();
    a.rowPitch = a.maskPitch = 1;
    const char* problem = masks::checkArgs(a);
    if (*problem) throw py::value_error(std::string("lowres_masks: ") + problem);
    {
        py::gil_scoped_release release;
        masks::lowresHost(a, out.mutable_data());
    }
    return out;
}

#ifdef TRTNET_WITH_CUDA
trtnet::warp::DType warp_dtype(std::string const& d) {
    if (d == "float32") return trtnet::warp::DType::kFloat32;
    if (d == "float16") return trtnet::warp::DType::kFloat16;
    throw py::value_error("dtype must be 'float32' or 'float16', got '" + d + "'");
}

void inverse_warp_device(std::string const& dtype, std::vector<int> shape, std::vector<int> scale_shape,
                         std::vector<int> bias_shape, float flow_divisor, std::uintptr_t feature, std::uintptr_t flow,
                         std::uintptr_t scale, std::uintptr_t bias, std::uintptr_t out, std::uintptr_t stream) {
    if (shape.size() != 4) throw py::value_error("shape must be (N, C, H, W)");
    trtnet::warp::Shape s{shape[0], shape[1], shape[2], shape[3], 1, 1, 1, 1};
    if (scale_shape.size() >= 2) { s.scale_n = scale_shape[0]; s.scale_c = scale_shape[1]; }
    if (bias_shape.size() >= 2) { s.bias_n = bias_shape[0]; s.bias_c = bias_shape[1]; }
    const char* problem = trtnet::warp::inverse_warp_check(s, flow_divisor);
    if (*problem) throw py::value_error(std::string("inverse_warp: ") + problem);
    const int rc = trtnet::warp::inverse_warp_launch(warp_dtype(dtype), s, flow_divisor,
                                                     reinterpret_cast<const void*>(feature),
                                                     reinterpret_cast<const void*>(flow),
                                                     reinterpret_cast<const void*>(scale),
                                                     reinterpret_cast<const void*>(bias), reinterpret_cast<void*>(out),
                                                     reinterpret_cast<void*>(stream));
    if (rc != 0) throw std::runtime_error("inverse_warp launch failed (code " + std::to_string(rc) + ")");
}

void fast_nms_device(std::string const& dtype, int n, int a, int c, int k, int top_k, float conf_thresh,
                     float nms_thresh, int max_det, int background_class, std::uintptr_t boxes, std::uintptr_t scores,
                     std::uintptr_t coeffs, std::uintptr_t count, std::uintptr_t out_boxes, std::uintptr_t out_scores,
                     std::uintptr_t out_classes, std::uintptr_t out_coeffs, std::uintptr_t workspace,
                     std::uintptr_t stream) {
    const auto s = settings(top_k, conf_thresh, nms_thresh, max_det, background_class);
    const char* problem = trtnet::nms::fast_nms_check(n, a, c, k, s);
    if (*problem) throw py::value_error(std::string("fast_nms: ") + problem);
    trtnet::nms::Tensors t{reinterpret_cast<const void*>(boxes), reinterpret_cast<const void*>(scores),
                           reinterpret_cast<const void*>(coeffs), reinterpret_cast<int32_t*>(count),
                           reinterpret_cast<void*>(out_boxes), reinterpret_cast<void*>(out_scores),
                           reinterpret_cast<int32_t*>(out_classes), reinterpret_cast<void*>(out_coeffs)};
    const auto dt = warp_dtype(dtype) == trtnet::warp::DType::kFloat32 ? trtnet::nms::DType::kFloat32
                                                                         : trtnet::nms::DType::kFloat16;
    const int rc = trtnet::nms::fast_nms_launch(dt, n, a, c, k, s, t, reinterpret_cast<void*>(workspace),
                                                reinterpret_cast<void*>(stream));
    if (rc != 0) throw std::runtime_error("fast_nms launch failed (code " + std::to_string(rc) + ")");
}
void assemble_masks_device(std::string const& proto_dtype, std::string const& det_dtype, std::vector<int> proto_shape,
                           int num_detections, std::vector<int> frame_hw, float threshold, bool crop,
                           std::string const& output, std::uintptr_t protos, std::uintptr_t coeffs,
                           std::uintptr_t boxes, std::uintptr_t count, std::uintptr_t out, std::size_t row_pitch,
                           std::size_t mask_pitch, std::uintptr_t workspace, std::uintptr_t stream) {
    if (proto_shape.size() != 3) throw py::value_error("proto_shape must be (Hp, Wp, K)");
    if (frame_hw.size() != 2) throw py::value_error("frame_hw must be (height, width)");
    if (output != "mask" && output != "prob") throw py::value_error("output must be 'mask' or 'prob', got '" + output + "'");
    masks::MaskAssemblyArgs a;
    a.protos = reinterpret_cast<const void*>(protos);
    a.protoType = warp_dtype(proto_dtype) == trtnet::warp::DType::kFloat32 ? masks::DType::kFloat32 : masks::DType::kFloat16;
    a.protoH = proto_shape[0];
    a.protoW = proto_shape[1];
    a.numProtos = proto_shape[2];
    a.coeffs = reinterpret_cast<const void*>(coeffs);
    a.boxes = reinterpret_cast<const void*>(boxes);
    a.detType = warp_dtype(det_dtype) == trtnet::warp::DType::kFloat32 ? masks::DType::kFloat32 : masks::DType::kFloat16;
    a.numDetections = num_detections;
    a.count = reinterpret_cast<const int32_t*>(count);
    a.frameH = frame_hw[0];
    a.frameW = frame_hw[1];
    a.out = reinterpret_cast<void*>(out);
    a.rowPitch = row_pitch;
    a.maskPitch = mask_pitch;
    a.output = output == "mask" ? masks::Output::kMaskU8 : masks::Output::kProbF32;
    a.threshold = threshold;
    a.crop = crop;
    const char* problem = masks::checkArgs(a);
    if (*problem) throw py::value_error(std::string("assemble_masks: ") + problem);
    const cudaError_t rc = masks::launchAssemble(a, reinterpret_cast<void*>(workspace),
                                                 reinterpret_cast<cudaStream_t>(stream));
    if (rc != cudaSuccess) throw std::runtime_error("mask assembly launch failed (code " + std::to_string(int(rc)) + ")");
}
#endif

}  // namespace

PYBIND11_MODULE(_C, m) {
    m.doc() = "trtnet's compiled plugin code: CPU twins (NumPy) and, if built with CUDA, kernel launchers.";

    m.def("inverse_warp", &inverse_warp_host, py::arg("feature"), py::arg("flow"), py::arg("scale") = py::none(),
          py::arg("bias") = py::none(), py::arg("flow_divisor") = 8.0f,
          "CPU twin of the InverseWarp plugin: bilinear sample of feature at the flow position (zero outside), "
          "then * scale + bias. float32 or float16 arrays, NCHW.");
    m.def("fast_nms", &fast_nms_host, py::arg("boxes"), py::arg("scores"), py::arg("coeffs"), py::kw_only(),
          py::arg("top_k") = 200, py::arg("conf_thresh") = 0.05f, py::arg("nms_thresh") = 0.5f,
          py::arg("max_det") = 100, py::arg("background_class") = 0,
          "CPU twin of the FastNMS plugin; returns (count, boxes, scores, classes, coeffs), fixed capacity max_det.");
    m.def(
        "fast_nms_workspace_size",
        [](int n, int a, int c, int top_k, int max_det, int background_class) {
            return trtnet::nms::fast_nms_workspace_size(n, a, c, settings(top_k, 0.05f, 0.5f, max_det, background_class));
        },
        py::arg("n"), py::arg("a"), py::arg("c"), py::arg("top_k") = 200, py::arg("max_det") = 100,
        py::arg("background_class") = 0, "Device workspace bytes the FastNMS kernels need for these sizes.");

    m.def("assemble_masks", &assemble_masks_host, py::arg("protos"), py::arg("coeffs"), py::arg("boxes"), py::kw_only(),
          py::arg("frame_hw"), py::arg("count") = py::none(), py::arg("threshold") = 0.5f, py::arg("crop") = true,
          py::arg("output") = "mask",
          "CPU twin of the CUDA mask assembler: sigmoid(protos @ coeffs.T), crop by box, bilinear resize to "
          "frame_hw, > threshold. uint8 [D, H, W] 0/1 ('mask') or float32 before the threshold ('prob'); "
          "D = min(count, len(coeffs)).");
    m.def("lowres_masks", &lowres_masks_host, py::arg("protos"), py::arg("coeffs"), py::arg("boxes"), py::kw_only(),
          py::arg("crop") = true, "Stage 1 of the CPU twin: cropped sigmoid masks [D, Hp, Wp] float32.");
    m.def("mask_workspace_size", &masks::workspaceSize, py::arg("max_detections"), py::arg("proto_h") = 138,
          py::arg("proto_w") = 138, "Device workspace bytes the mask assembly kernels need.");

    // The host float16 conversions the twins use, exposed for exhaustive tests.
    m.def(
        "_float_to_half_bits",
        [](py::array_t<float, py::array::c_style | py::array::forcecast> x) {
            py::array_t<uint16_t> out(x.size());
            const float* in = x.data();
            uint16_t* o = out.mutable_data();
            for (py::ssize_t i = 0; i < x.size(); ++i) o[i] = trtnet::float_to_half(in[i]).bits;
            return out;
        },
        "float32 -> float16 bits, round to nearest even (the CPU twins' conversion).");
    m.def(
        "_half_bits_to_float",
        [](py::array_t<uint16_t, py::array::c_style | py::array::forcecast> x) {
            py::array_t<float> out(x.size());
            const uint16_t* in = x.data();
            float* o = out.mutable_data();
            for (py::ssize_t i = 0; i < x.size(); ++i) o[i] = trtnet::half_to_float(trtnet::half_t{in[i]});
            return out;
        },
        "float16 bits -> float32 (the CPU twins' conversion).");

    py::dict info;
#ifdef TRTNET_WITH_CUDA
    info["cuda"] = true;
    info["cuda_version"] = TRTNET_CUDA_VERSION;
    info["cuda_architectures"] = TRTNET_CUDA_ARCHITECTURES;
    m.def("inverse_warp_device", &inverse_warp_device, py::arg("dtype"), py::arg("shape"), py::arg("scale_shape"),
          py::arg("bias_shape"), py::arg("flow_divisor"), py::arg("feature"), py::arg("flow"), py::arg("scale"),
          py::arg("bias"), py::arg("out"), py::arg("stream"),
          "Launch the InverseWarp kernel on device pointers (0 = no scale / bias) and a cudaStream_t (int).");
    m.def("fast_nms_device", &fast_nms_device, py::arg("dtype"), py::arg("n"), py::arg("a"), py::arg("c"),
          py::arg("k"), py::arg("top_k"), py::arg("conf_thresh"), py::arg("nms_thresh"), py::arg("max_det"),
          py::arg("background_class"), py::arg("boxes"), py::arg("scores"), py::arg("coeffs"), py::arg("count"),
          py::arg("out_boxes"), py::arg("out_scores"), py::arg("out_classes"), py::arg("out_coeffs"),
          py::arg("workspace"), py::arg("stream"),
          "Launch the FastNMS kernels on device pointers with a workspace of fast_nms_workspace_size bytes.");
    m.def("assemble_masks_device", &assemble_masks_device, py::arg("proto_dtype"), py::arg("det_dtype"),
          py::arg("proto_shape"), py::arg("num_detections"), py::arg("frame_hw"), py::arg("threshold"),
          py::arg("crop"), py::arg("output"), py::arg("protos"), py::arg("coeffs"), py::arg("boxes"),
          py::arg("count"), py::arg("out"), py::arg("row_pitch"), py::arg("mask_pitch"), py::arg("workspace"),
          py::arg("stream"),
          "Launch the mask assembly kernels on device pointers (count 0 = all num_detections) with a workspace "
          "of mask_workspace_size bytes.");
#else
    info["cuda"] = false;
    info["cuda_version"] = "";
    info["cuda_architectures"] = "";
#endif
    m.attr("BUILD_INFO") = info;
}
