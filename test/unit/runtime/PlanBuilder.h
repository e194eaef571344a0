//===- PlanBuilder.h - building plan files in tests -------------*- C++ -*-===//
//
// A plain description of a plan (PlanSpec) and buildPlan(), which serializes it with the FlatBuffers builder
// generated from runtime/plan/plan.fbs, so that runtime tests need no compiler.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_TEST_UNIT_RUNTIME_PLANBUILDER_H
#define MEG_TEST_UNIT_RUNTIME_PLANBUILDER_H

#include "runtime/plan/plan_generated.h"

#include <cstdint>
#include <string>
#include <vector>

namespace meg::runtime::test {

struct RefSpec {
  plan::Storage storage = plan::Storage::Arena;
  int64_t index = 0;
  plan::DType dtype = plan::DType::F32;
  std::vector<int64_t> shape, global, offset; ///< global/offset empty: the whole tensor
};

inline RefSpec arenaRef(int64_t byteOffset, std::vector<int64_t> shape, plan::DType t = plan::DType::F32) {
  return {plan::Storage::Arena, byteOffset, t, std::move(shape), {}, {}};
}
inline RefSpec paramRef(int64_t index, std::vector<int64_t> shape) {
  return {plan::Storage::Param, index, plan::DType::F32, std::move(shape), {}, {}};
}
inline RefSpec inputRef(int64_t index, std::vector<int64_t> shape, plan::DType t = plan::DType::I32) {
  return {plan::Storage::Input, index, t, std::move(shape), {}, {}};
}
/// The same view, as a shard of `global` at `offset`.
inline RefSpec sharded(RefSpec r, std::vector<int64_t> global, std::vector<int64_t> offset) {
  r.global = std::move(global);
  r.offset = std::move(offset);
  return r;
}

struct AttrSpec {
  std::string key;
  plan::AttrKind kind = plan::AttrKind::Int;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
};
inline AttrSpec intAttr(std::string k, int64_t v) { return {std::move(k), plan::AttrKind::Int, false, v, 0, "", {}}; }
inline AttrSpec floatAttr(std::string k, double v) {
  return {std::move(k), plan::AttrKind::Float, false, 0, v, "", {}};
}
inline AttrSpec boolAttr(std::string k, bool v) { return {std::move(k), plan::AttrKind::Bool, v, 0, 0, "", {}}; }
inline AttrSpec symAttr(std::string k, std::string v) {
  return {std::move(k), plan::AttrKind::Symbol, false, 0, 0, std::move(v), {}};
}
inline AttrSpec intsAttr(std::string k, std::vector<int64_t> v) {
  return {std::move(k), plan::AttrKind::Ints, false, 0, 0, "", std::move(v)};
}

struct StepSpec {
  std::string op;
  std::vector<AttrSpec> attrs; ///< sorted by key
  std::vector<RefSpec> operands, results;
  plan::Phase phase = plan::Phase::Forward;
};

struct ParamSpec {
  std::string name;
  std::vector<int64_t> global, shape, offset, hf;
  plan::Init init = plan::Init::Normal;
  double std = 0.02;
  int64_t vocabRows = 0;
};

struct InputSpec {
  std::string name;
  plan::DType dtype = plan::DType::I32;
  std::vector<int64_t> global, shape, offset;
};

struct PlanSpec {
  uint32_t version = 1;
  int dp = 1, tp = 1, rank = 0;
  std::string model = "{}";
  std::string mode = "train";
  int64_t arenaBytes = 0;
  std::vector<ParamSpec> params;
  std::vector<InputSpec> inputs;
  std::vector<StepSpec> steps;
  std::vector<std::pair<std::string, RefSpec>> outputs;
  int microBatches = 1;
};

inline std::vector<uint8_t> buildPlan(const PlanSpec &p) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.ForceDefaults(true);
  auto ref = [&](const RefSpec &r) {
    std::vector<int64_t> global = r.global.empty() ? r.shape : r.global;
    std::vector<int64_t> offset = r.offset.empty() ? std::vector<int64_t>(r.shape.size(), 0) : r.offset;
    return plan::CreateTensorRefDirect(fbb, r.storage, r.index, r.dtype, &r.shape, &global, &offset);
  };
  std::vector<flatbuffers::Offset<plan::Parameter>> params;
  for (const ParamSpec &q : p.params) {
    std::vector<int64_t> shape = q.shape.empty() ? q.global : q.shape;
    std::vector<int64_t> offset = q.offset.empty() ? std::vector<int64_t>(shape.size(), 0) : q.offset;
    params.push_back(plan::CreateParameterDirect(fbb, q.name.c_str(), plan::DType::F32, &q.global, &q.hf, &shape,
                                                 &offset, q.init, q.std, false, q.vocabRows));
  }
  std::vector<flatbuffers::Offset<plan::Input>> inputs;
  for (const InputSpec &in : p.inputs) {
    std::vector<int64_t> shape = in.shape.empty() ? in.global : in.shape;
    std::vector<int64_t> offset = in.offset.empty() ? std::vector<int64_t>(shape.size(), 0) : in.offset;
    inputs.push_back(plan::CreateInputDirect(fbb, in.name.c_str(), in.dtype, &in.global, &shape, &offset));
  }
  std::vector<flatbuffers::Offset<plan::Step>> steps;
  for (const StepSpec &s : p.steps) {
    std::vector<flatbuffers::Offset<plan::Attr>> attrs;
    for (const AttrSpec &a : s.attrs)
      attrs.push_back(plan::CreateAttrDirect(fbb, a.key.c_str(), a.kind, a.b, a.i, a.f,
                                             a.s.empty() ? nullptr : a.s.c_str(), &a.ints));
    std::vector<flatbuffers::Offset<plan::TensorRef>> operands, results;
    for (const RefSpec &r : s.operands)
      operands.push_back(ref(r));
    for (const RefSpec &r : s.results)
      results.push_back(ref(r));
    steps.push_back(plan::CreateStepDirect(fbb, s.op.c_str(), &attrs, &operands, &results, 0, s.phase));
  }
  std::vector<flatbuffers::Offset<plan::Output>> outputs;
  for (const auto &[name, r] : p.outputs)
    outputs.push_back(plan::CreateOutputDirect(fbb, name.c_str(), ref(r)));
  auto root = plan::CreatePlanDirect(fbb, p.version, p.dp, p.tp, p.rank, p.model.c_str(), p.mode.c_str(),
                                     p.arenaBytes, &params, &inputs, &steps, &outputs, nullptr, p.microBatches);
  plan::FinishPlanBuffer(fbb, root);
  return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

} // namespace meg::runtime::test

#endif
