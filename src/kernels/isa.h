// The instruction sets CPU kernels are compiled for (files *_avx2.cc, *_avx512.cc) and which of
// them the running CPU supports. Kernels dispatch on BestIsa(); tests and benchmarks pass each
// supported Isa explicitly to cover every path. Pure functions, any thread.
#pragma once

#include <string_view>

namespace tinyserve::kernels {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// kAvx2 needs AVX2+FMA+F16C+BMI2; kAvx512 additionally F/BW/VL/DQ/VNNI/BF16 (the flags those
// files are compiled with, so the compiler may use any of them). kScalar is always supported.
bool IsaSupported(Isa isa);
// The widest supported Isa (detected once).
Isa BestIsa();
// "scalar", "avx2", "avx512".
std::string_view IsaName(Isa isa);

}  // namespace tinyserve::kernels
