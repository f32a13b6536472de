// Registration and shape functions of the adaptive warping ops.
// Semantics: ../kernels/adaptive_warp_op.h and docs/design.md §3.7.
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace spiritnet {
namespace {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

absl::Status Rank4(InferenceContext* c, int index, const char* name,
                   const char* layout) {
  ShapeHandle s = c->input(index);
  if (c->RankKnown(s) && c->Rank(s) != 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "adaptive_warp: ", name, " must be rank 4 ", layout, ", got rank ", c->Rank(s)));
  }
  return absl::OkStatus();
}

absl::Status SameDim(InferenceContext* c, ShapeHandle a, ShapeHandle b, int axis,
                     const char* what, const char* other) {
  DimensionHandle unused;
  if (!c->Merge(c->Dim(a, axis), c->Dim(b, axis), &unused).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "adaptive_warp: ", what, " of ", other, " (", c->Value(c->Dim(b, axis)),
        ") does not match the image's (", c->Value(c->Dim(a, axis)), ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckLastDim(InferenceContext* c, ShapeHandle s, const char* name,
                          int expected) {
  DimensionHandle d = c->Dim(s, 3);
  if (c->ValueKnown(d) && c->Value(d) != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "adaptive_warp: ", name, " must have ", expected, " channels, got ", c->Value(d)));
  }
  return absl::OkStatus();
}

// Checks image [B,H,W,C], flow [B,H,W,2], kernel [B,H,W,16] starting at input
// `first` and returns the image shape.
absl::Status CheckWarpInputs(InferenceContext* c, int first) {
  TF_RETURN_IF_ERROR(Rank4(c, first, "image", "[B,H,W,C]"));
  TF_RETURN_IF_ERROR(Rank4(c, first + 1, "flow", "[B,H,W,2]"));
  TF_RETURN_IF_ERROR(Rank4(c, first + 2, "kernel", "[B,H,W,16]"));
  ShapeHandle image = c->input(first), flow = c->input(first + 1),
              kernel = c->input(first + 2);
  if (!c->RankKnown(image) || !c->RankKnown(flow) || !c->RankKnown(kernel)) {
    return absl::OkStatus();
  }
  TF_RETURN_IF_ERROR(CheckLastDim(c, flow, "flow", 2));
  TF_RETURN_IF_ERROR(CheckLastDim(c, kernel, "kernel", 16));
  const char* axes[3] = {"batch size", "height", "width"};
  for (int axis = 0; axis < 3; ++axis) {
    TF_RETURN_IF_ERROR(SameDim(c, image, flow, axis, axes[axis], "flow"));
    TF_RETURN_IF_ERROR(SameDim(c, image, kernel, axis, axes[axis], "kernel"));
  }
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("SpiritnetAdaptiveWarp")
    .Input("image: T")
    .Input("flow: T")
    .Input("kernel: T")
    .Output("output: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(CheckWarpInputs(c, 0));
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Warps `image` with backward `flow` and a learned 4x4 `kernel` per pixel
(DAIN adaptive warping). image [B,H,W,C], flow [B,H,W,2] (dx, dy in pixels),
kernel [B,H,W,16] -> output [B,H,W,C]. Pixels whose target falls outside the
image or whose flow is not finite copy the input pixel.
)doc");

REGISTER_OP("SpiritnetAdaptiveWarpGrad")
    .Input("grad_output: T")
    .Input("image: T")
    .Input("flow: T")
    .Input("kernel: T")
    .Output("grad_image: T")
    .Output("grad_flow: T")
    .Output("grad_kernel: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(CheckWarpInputs(c, 1));
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      c->set_output(2, c->input(3));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Gradients of SpiritnetAdaptiveWarp with respect to image, flow and kernel.
)doc");

}  // namespace spiritnet
