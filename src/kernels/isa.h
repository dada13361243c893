// The one place that asks the CPU what it has (cpuid, plus xgetbv for the register state the OS
// saves), and the instruction sets CPU kernels are compiled for (files *_avx2.cc, *_avx512.cc).
// Kernels dispatch on BestIsa(); tests and benchmarks pass each supported Isa explicitly to cover
// every path. TINYSERVE_ISA=scalar|avx2|avx512|amx (read once, at the first call) caps the Isa for
// testing the narrower paths on a wide CPU. Any thread; the first call asks Linux for the AMX tile
// state (arch_prctl), a once-per-process side effect.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tinyserve::kernels {

// kAmx: kAvx512 plus the AMX tile unit (int8; bf16 where the CPU has AMX-BF16). Only matmuls use
// the tiles; every other kernel runs its kAvx512 code under kAmx.
enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAmx = 3 };

// What the CPU reports and the OS has enabled (a feature whose registers the OS does not save,
// per XCR0, reads false). Names follow the /proc/cpuinfo flags.
struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool bmi2 = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool avx_vnni = false;
  // The tile registers are enabled by the OS (XCR0) and Linux granted this process the tile
  // state (arch_prctl ARCH_REQ_XCOMP_PERM, asked once at detection): without that grant the
  // first tile instruction raises SIGILL, so amx_* read false.
  bool amx_tile = false;
  bool amx_int8 = false;
  bool amx_bf16 = false;
  // The vendor is AMD (cpuid leaf 0: "AuthenticAMD"), for the tuning that the instruction set
  // does not decide (matmul_internal.h ReadsWeightsAhead).
  bool amd = false;
};

// The running CPU's features (detected once; the TINYSERVE_ISA cap does not change them).
const CpuFeatures& DetectedCpuFeatures();
// The CPU's model name (cpuid brand string), e.g. for benchmark reports; "" when absent.
std::string CpuModelName();

// Whether a CPU with these features runs the files compiled for `isa`: kAvx2 needs
// AVX2+FMA+F16C+BMI2; kAvx512 additionally F/BW/VL/DQ/VNNI/BF16 (exactly the flags
// TINYSERVE_AVX512_FLAGS in cmake/modules.cmake compiles those files with, so the compiler may
// use any of them); kAmx additionally AMX-TILE and AMX-INT8. kScalar always.
bool IsaSupportedBy(const CpuFeatures& features, Isa isa);

// The Isa to use given the widest one the hardware supports and the TINYSERVE_ISA value (null
// or empty: no cap). An unknown value, or one wider than `hw`, is logged and ignored: the cap
// never enables an Isa the CPU lacks.
Isa CapIsa(Isa hw, const char* env);

// BestIsa() is CapIsa(widest the hardware supports, TINYSERVE_ISA), kAmx included, so an
// AMX CPU runs bf16 matmuls from 16 rows on AMX-BF16 where present (8-10x the vdpbf16ps kernel
// from 64 rows), unless TINYSERVE_ISA=avx512 caps it. Quantized matmuls run the AVX-512 kernel
// there (MatMul): the AMX int8 kernel, bit-identical, measured 1.0-1.4x the AVX-512 one in
// session 8 but slower in the whole model since the AVX-512 path gained its fusions
// (matmul_internal.h kAmxMinRows has the numbers); MatMulWithIsa(kAmx) still runs it.

// IsaSupportedBy(DetectedCpuFeatures(), isa), and isa not above the TINYSERVE_ISA cap (so kAmx
// counts as supported on an AMX CPU whatever kernels choose per matmul; tests run it).
bool IsaSupported(Isa isa);
// The Isa kernels dispatch to (above), detected once.
Isa BestIsa();
// "scalar", "avx2", "avx512", "amx".
std::string_view IsaName(Isa isa);
// The inverse of IsaName; nullopt for any other string.
std::optional<Isa> ParseIsa(std::string_view name);

}  // namespace tinyserve::kernels
