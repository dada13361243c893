// Helpers shared by the kernels module's tests (header-only; tests only).
#pragma once

#include <vector>

#include "kernels/isa.h"

namespace tinyserve::kernels::testing {

// The vector ISAs this CPU runs, scalar first: every elementwise and attention kernel has one
// path per ISA.
inline std::vector<Isa> SupportedVectorIsas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
    if (IsaSupported(isa)) out.push_back(isa);
  return out;
}

// The same plus AMX, which only the matmuls use.
inline std::vector<Isa> SupportedMatMulIsas() {
  std::vector<Isa> out = SupportedVectorIsas();
  if (IsaSupported(Isa::kAmx)) out.push_back(Isa::kAmx);
  return out;
}

}  // namespace tinyserve::kernels::testing
