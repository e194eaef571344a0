//===- Split.cpp - Megatron's --split: train, valid and test ------------------===//
#include "runtime/data/Split.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cmath>

using namespace meg::runtime;

llvm::Expected<std::array<double, 3>> meg::runtime::parseSplit(llvm::StringRef text) {
  auto bad = [&](const llvm::Twine &why) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "--split '" + text + "': " + why);
  };
  llvm::SmallVector<llvm::StringRef, 4> parts;
  text.split(parts, text.contains(',') ? ',' : '/');
  if (parts.size() > 3)
    return bad("at most three weights (train, valid, test)");
  std::array<double, 3> w = {0, 0, 0};
  double sum = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].trim().getAsDouble(w[i]) || !(w[i] >= 0) || !std::isfinite(w[i]))
      return bad("'" + parts[i] + "' is not a non-negative number");
    sum += w[i];
  }
  if (!(sum > 0))
    return bad("the weights add up to 0");
  for (double &x : w)
    x /= sum;
  return w;
}

std::array<uint64_t, 4> meg::runtime::splitBounds(const std::array<double, 3> &weights, uint64_t size) {
  std::array<int64_t, 4> b = {0, 0, 0, 0};
  for (size_t i = 0; i < 3; ++i)
    b[i + 1] = b[i] + int64_t(std::nearbyint(weights[i] * double(size))); // round half to even, as Python's round
  int64_t diff = b[3] - int64_t(size);
  for (size_t i = 1; i < 4; ++i)
    b[i] -= diff;
  std::array<uint64_t, 4> out;
  for (size_t i = 0; i < 4; ++i)
    out[i] = uint64_t(std::clamp<int64_t>(b[i], 0, int64_t(size)));
  return out;
}
