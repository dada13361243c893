#include "kernels/isa.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "util/logging.h"

namespace tinyserve::kernels {
namespace {

struct CpuidRegs {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

// cpuid(leaf, subleaf); all zero when the leaf is past the CPU's highest one.
CpuidRegs Cpuid(unsigned leaf, unsigned subleaf) {
  CpuidRegs r;
  if (static_cast<unsigned>(__get_cpuid_max(leaf & 0x80000000u, nullptr)) < leaf) return r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

bool Bit(unsigned reg, int bit) { return ((reg >> bit) & 1u) != 0; }

// XCR0: which register states the OS saves on a context switch. Inline asm: the _xgetbv
// intrinsic needs -mxsave, and this file is built for the baseline ISA.
uint64_t Xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t{hi} << 32) | lo;
}

// Linux hands out the AMX tile data state (XFEATURE_XTILEDATA, 18) only to processes that ask:
// arch_prctl(ARCH_REQ_XCOMP_PERM = 0x1023). The grant is process-wide and permanent.
bool RequestAmxTileState() {
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-vararg): raw syscall, no libc wrapper exists
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

CpuFeatures Detect() {
  CpuFeatures f;
  const CpuidRegs l0 = Cpuid(0, 0);
  // "AuthenticAMD" in ebx, edx, ecx order.
  f.amd = l0.ebx == 0x68747541u && l0.edx == 0x69746e65u && l0.ecx == 0x444d4163u;
  const CpuidRegs l1 = Cpuid(1, 0);
  // Without OSXSAVE there is no xgetbv, and no OS support for any AVX state.
  if (!Bit(l1.ecx, 27)) return f;
  const uint64_t xcr0 = Xcr0();
  const bool os_avx = (xcr0 & 0x6) == 0x6;          // SSE + AVX (YMM upper halves)
  const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;     // + opmask, ZMM upper halves, ZMM16-31
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG + XTILEDATA
  const CpuidRegs l7 = Cpuid(7, 0);
  const CpuidRegs l7s1 = Cpuid(7, 1);
  if (os_avx && Bit(l1.ecx, 28)) {
    f.fma = Bit(l1.ecx, 12);
    f.f16c = Bit(l1.ecx, 29);
    f.avx2 = Bit(l7.ebx, 5);
    f.avx_vnni = Bit(l7s1.eax, 4);
  }
  f.bmi2 = Bit(l7.ebx, 8);
  if (os_avx512) {
    f.avx512f = Bit(l7.ebx, 16);
    f.avx512dq = Bit(l7.ebx, 17);
    f.avx512bw = Bit(l7.ebx, 30);
    f.avx512vl = Bit(l7.ebx, 31);
    f.avx512_vnni = Bit(l7.ecx, 11);
    f.avx512_bf16 = Bit(l7s1.eax, 5);
  }
  if (os_amx && Bit(l7.edx, 24) && RequestAmxTileState()) {
    f.amx_bf16 = Bit(l7.edx, 22);
    f.amx_tile = Bit(l7.edx, 24);
    f.amx_int8 = Bit(l7.edx, 25);
  }
  return f;
}

}  // namespace

Isa CapIsa(Isa hw, const char* env) {
  if (env == nullptr || *env == '\0') return hw;
  const std::optional<Isa> want = ParseIsa(env);
  if (!want) {
    TS_LOG_WARNING("TINYSERVE_ISA={} is not one of scalar, avx2, avx512, amx; using {}", env,
                   IsaName(hw));
    return hw;
  }
  if (static_cast<int>(*want) > static_cast<int>(hw)) {
    TS_LOG_WARNING("TINYSERVE_ISA={}: this CPU supports at most {}; using {}", env, IsaName(hw),
                   IsaName(hw));
    return hw;
  }
  return *want;
}

namespace {

Isa DetectCap() {
  const CpuFeatures& f = DetectedCpuFeatures();
  const Isa hw = IsaSupportedBy(f, Isa::kAmx)      ? Isa::kAmx
                 : IsaSupportedBy(f, Isa::kAvx512) ? Isa::kAvx512
                 : IsaSupportedBy(f, Isa::kAvx2)   ? Isa::kAvx2
                                                   : Isa::kScalar;
  const char* env = std::getenv("TINYSERVE_ISA");  // NOLINT(concurrency-mt-unsafe): once
  return CapIsa(hw, env);
}

Isa Cap() {
  static const Isa cap = DetectCap();
  return cap;
}

}  // namespace

const CpuFeatures& DetectedCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

std::string CpuModelName() {
  char brand[49] = {};
  for (unsigned i = 0; i < 3; ++i) {
    const CpuidRegs r = Cpuid(0x80000002u + i, 0);
    const unsigned regs[4] = {r.eax, r.ebx, r.ecx, r.edx};
    std::memcpy(brand + 16 * i, regs, sizeof(regs));
  }
  std::string s(brand);
  const size_t begin = s.find_first_not_of(' ');
  const size_t end = s.find_last_not_of(' ');
  return begin == std::string::npos ? std::string() : s.substr(begin, end - begin + 1);
}

bool IsaSupportedBy(const CpuFeatures& f, Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return f.avx2 && f.fma && f.f16c && f.bmi2;
    case Isa::kAvx512:
      return IsaSupportedBy(f, Isa::kAvx2) && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq &&
             f.avx512_vnni && f.avx512_bf16;
    case Isa::kAmx:
      return IsaSupportedBy(f, Isa::kAvx512) && f.amx_tile && f.amx_int8;
  }
  return false;
}

bool IsaSupported(Isa isa) {
  return static_cast<int>(isa) <= static_cast<int>(Cap()) &&
         IsaSupportedBy(DetectedCpuFeatures(), isa);
}

Isa BestIsa() { return Cap(); }

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAmx:
      return "amx";
  }
  return "unknown";
}

std::optional<Isa> ParseIsa(std::string_view name) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAmx}) {
    if (name == IsaName(isa)) return isa;
  }
  return std::nullopt;
}

}  // namespace tinyserve::kernels
