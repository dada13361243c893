#include "kernels/isa.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace tinyserve::kernels {
namespace {

// The words of the first processor's `key` line in /proc/cpuinfo (after the colon); empty when
// the file cannot be read or has no such line.
std::vector<std::string> ProcCpuinfoWords(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (line.rfind(key, 0) != 0 || colon == std::string::npos) continue;
    std::istringstream stream(line.substr(colon + 1));
    std::vector<std::string> words;
    std::string w;
    while (stream >> w) words.push_back(w);
    return words;
  }
  return {};
}

// The flags of the first processor (the kernel lists a feature only when both the CPU and the
// kernel support it).
std::set<std::string> ProcCpuinfoFlags() {
  const std::vector<std::string> words = ProcCpuinfoWords("flags");
  return {words.begin(), words.end()};
}

TEST(IsaTest, DetectedVendorMatchesProcCpuinfo) {
  const std::vector<std::string> vendor = ProcCpuinfoWords("vendor_id");
  if (vendor.empty()) GTEST_SKIP() << "SKIPPED: no vendor_id line in /proc/cpuinfo on this machine";
  EXPECT_EQ(DetectedCpuFeatures().amd, vendor[0] == "AuthenticAMD") << vendor[0];
}

TEST(IsaTest, DetectedFeaturesMatchProcCpuinfo) {
  const std::set<std::string> flags = ProcCpuinfoFlags();
  if (flags.empty()) GTEST_SKIP() << "SKIPPED: no flags line in /proc/cpuinfo on this machine";
  const CpuFeatures& f = DetectedCpuFeatures();
  const auto has = [&](const char* name) { return flags.count(name) != 0; };
  EXPECT_EQ(f.avx2, has("avx2"));
  EXPECT_EQ(f.fma, has("fma"));
  EXPECT_EQ(f.f16c, has("f16c"));
  EXPECT_EQ(f.bmi2, has("bmi2"));
  EXPECT_EQ(f.avx512f, has("avx512f"));
  EXPECT_EQ(f.avx512bw, has("avx512bw"));
  EXPECT_EQ(f.avx512vl, has("avx512vl"));
  EXPECT_EQ(f.avx512dq, has("avx512dq"));
  EXPECT_EQ(f.avx512_vnni, has("avx512_vnni"));
  EXPECT_EQ(f.avx512_bf16, has("avx512_bf16"));
  EXPECT_EQ(f.avx_vnni, has("avx_vnni"));
  EXPECT_EQ(f.amx_tile, has("amx_tile"));
  EXPECT_EQ(f.amx_int8, has("amx_int8"));
  EXPECT_EQ(f.amx_bf16, has("amx_bf16"));
}

TEST(IsaTest, ScalarAndBestAreSupported) {
  EXPECT_TRUE(IsaSupported(Isa::kScalar));
  EXPECT_TRUE(IsaSupported(BestIsa()));
  EXPECT_TRUE(IsaSupportedBy(DetectedCpuFeatures(), BestIsa()));
}

CpuFeatures Avx2Cpu() {
  CpuFeatures f;
  f.avx2 = f.fma = f.f16c = f.bmi2 = true;
  return f;
}

CpuFeatures Avx512Cpu() {
  CpuFeatures f = Avx2Cpu();
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512_vnni = f.avx512_bf16 = true;
  return f;
}

TEST(IsaTest, Avx512NeedsEveryFlagItsFilesAreCompiledWith) {
  EXPECT_TRUE(IsaSupportedBy(Avx512Cpu(), Isa::kAvx512));
  // A VNNI CPU without BF16 (Ice Lake, Cascade Lake) must not run the avx512 files.
  CpuFeatures no_bf16 = Avx512Cpu();
  no_bf16.avx512_bf16 = false;
  EXPECT_FALSE(IsaSupportedBy(no_bf16, Isa::kAvx512));
  EXPECT_TRUE(IsaSupportedBy(no_bf16, Isa::kAvx2));
  CpuFeatures no_vnni = Avx512Cpu();
  no_vnni.avx512_vnni = false;
  EXPECT_FALSE(IsaSupportedBy(no_vnni, Isa::kAvx512));
  CpuFeatures no_f16c = Avx512Cpu();
  no_f16c.f16c = false;
  EXPECT_FALSE(IsaSupportedBy(no_f16c, Isa::kAvx2));
  EXPECT_FALSE(IsaSupportedBy(no_f16c, Isa::kAvx512));
  EXPECT_TRUE(IsaSupportedBy(CpuFeatures{}, Isa::kScalar));
  EXPECT_FALSE(IsaSupportedBy(CpuFeatures{}, Isa::kAvx2));
}

TEST(IsaTest, AmxNeedsTheAvx512SetAndTheInt8Tiles) {
  CpuFeatures amx = Avx512Cpu();
  amx.amx_tile = amx.amx_int8 = true;
  EXPECT_TRUE(IsaSupportedBy(amx, Isa::kAmx));
  CpuFeatures no_int8 = amx;
  no_int8.amx_int8 = false;  // a bf16-only tile unit
  EXPECT_FALSE(IsaSupportedBy(no_int8, Isa::kAmx));
  CpuFeatures no_vnni = amx;
  no_vnni.avx512_vnni = false;  // the matmul epilogues and every other kernel are AVX-512
  EXPECT_FALSE(IsaSupportedBy(no_vnni, Isa::kAmx));
  EXPECT_FALSE(IsaSupportedBy(Avx512Cpu(), Isa::kAmx));
  EXPECT_EQ(CapIsa(Isa::kAmx, "avx512"), Isa::kAvx512);
  EXPECT_EQ(CapIsa(Isa::kAvx512, "amx"), Isa::kAvx512);
}

// kAmx is chosen wherever the CPU has the unit (bf16 matmuls on the AMX-BF16 tiles, isa.h);
// TINYSERVE_ISA=avx512 caps it off.
TEST(IsaTest, AmxIsChosenUnlessCapped) {
  EXPECT_EQ(CapIsa(Isa::kAmx, nullptr), Isa::kAmx);
  EXPECT_EQ(CapIsa(Isa::kAmx, ""), Isa::kAmx);
  EXPECT_EQ(CapIsa(Isa::kAmx, "amx"), Isa::kAmx);
  EXPECT_EQ(CapIsa(Isa::kAmx, "avx512"), Isa::kAvx512);
  EXPECT_EQ(CapIsa(Isa::kAmx, "avx2"), Isa::kAvx2);
}

TEST(IsaTest, EnvironmentCapsButNeverRaisesTheIsa) {
  EXPECT_EQ(CapIsa(Isa::kAvx512, nullptr), Isa::kAvx512);
  EXPECT_EQ(CapIsa(Isa::kAvx512, ""), Isa::kAvx512);
  EXPECT_EQ(CapIsa(Isa::kAvx512, "avx2"), Isa::kAvx2);
  EXPECT_EQ(CapIsa(Isa::kAvx512, "scalar"), Isa::kScalar);
  EXPECT_EQ(CapIsa(Isa::kAvx2, "avx512"), Isa::kAvx2);
  EXPECT_EQ(CapIsa(Isa::kAvx512, "AVX2"), Isa::kAvx512);  // unknown: ignored
  EXPECT_EQ(CapIsa(Isa::kAvx2, "sse4"), Isa::kAvx2);
}

// Runs as-is and again with TINYSERVE_ISA=avx2 and =scalar (kernels/CMakeLists.txt), so the
// variable is read and applied end to end.
TEST(IsaTest, BestIsaIsTheWidestSupportedUnderTheEnvironmentCap) {
  const CpuFeatures& f = DetectedCpuFeatures();
  const Isa hw = IsaSupportedBy(f, Isa::kAmx)      ? Isa::kAmx
                 : IsaSupportedBy(f, Isa::kAvx512) ? Isa::kAvx512
                 : IsaSupportedBy(f, Isa::kAvx2)   ? Isa::kAvx2
                                                   : Isa::kScalar;
  const char* env = std::getenv("TINYSERVE_ISA");  // NOLINT(concurrency-mt-unsafe): test start
  EXPECT_EQ(BestIsa(), CapIsa(hw, env)) << (env ? env : "(unset)");
  EXPECT_TRUE(IsaSupported(CapIsa(hw, env)));
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAmx}) {
    if (static_cast<int>(isa) > static_cast<int>(CapIsa(hw, env))) {
      EXPECT_FALSE(IsaSupported(isa));
    }
  }
}

TEST(IsaTest, NamesRoundTrip) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAmx}) {
    EXPECT_EQ(ParseIsa(IsaName(isa)), isa);
  }
  EXPECT_FALSE(ParseIsa("avx"));
}

TEST(IsaTest, SupportedFollowsTheCap) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    EXPECT_EQ(IsaSupported(isa), static_cast<int>(isa) <= static_cast<int>(BestIsa()) &&
                                     IsaSupportedBy(DetectedCpuFeatures(), isa))
        << IsaName(isa);
  }
}

}  // namespace
}  // namespace tinyserve::kernels
