// The AMX tile unit as the matmul kernels use it: the 64-byte tile configuration and the five
// tile instructions (configure, load, store, zero, and the int8 and bf16 dot products), as
// inline assembly. Why not the <immintrin.h> intrinsics: Debian 12's GCC 12 declares
// _tile_loadconfig's operand as 8 bytes, so the compiler drops the stores that fill the other 56
// and the first tile load raises SIGILL; and its _tile_loadd / _tile_stored asm says nothing about
// the memory it reads or writes, so the compiler may reorder or drop the buffer accesses around
// them. Here every instruction declares the memory it touches ("m" operand or "memory" clobber).
// The assembler needs no -mamx flags; the CPU must report AMX-TILE and AMX-INT8 and Linux must have
// granted the tile state (kernels/isa.h does both before Isa::kAmx is offered). Tile state is per
// thread: configure on the thread that runs the tile instructions, release when done.
#pragma once

#include <cstdint>

namespace tinyserve::kernels::amx {

// ldtilecfg's operand (palette 1): per tile register, its rows and bytes per row; a tile not
// set here is unused (0 rows).
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};

  void Set(int tile, int num_rows, int bytes_per_row) {
    rows[tile] = static_cast<uint8_t>(num_rows);
    colsb[tile] = static_cast<uint16_t>(bytes_per_row);
  }
};
static_assert(sizeof(TileConfig) == 64, "ldtilecfg reads exactly 64 bytes");

// The hardware unit. T, C, A, B are tile register numbers 0..7.
struct HardwareTiles {
  static void Configure(const TileConfig& cfg) { __asm__ volatile("ldtilecfg %0" : : "m"(cfg)); }
  static void Release() { __asm__ volatile("tilerelease" ::: "memory"); }
  // Tile T's rows from base, base + stride, ...
  template <int T>
  static void Load(const void* base, int64_t stride) {
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm%c2" : : "r"(base), "r"(stride), "i"(T) : "memory");
  }
  template <int T>
  static void Store(void* base, int64_t stride) {
    __asm__ volatile("tilestored %%tmm%c2, (%0,%1,1)"
                     :
                     : "r"(base), "r"(stride), "i"(T)
                     : "memory");
  }
  template <int T>
  static void Zero() {
    __asm__ volatile("tilezero %%tmm%c0" : : "i"(T));
  }
  // C[m][n] (int32) += sum over k of A[m][k] (int8) * B[k / 4][4 n + k % 4] (uint8).
  template <int C, int A, int B>
  static void DotSignedUnsigned() {
    __asm__ volatile("tdpbsud %%tmm%c2, %%tmm%c1, %%tmm%c0" : : "i"(C), "i"(A), "i"(B));
  }
  // C[m][n] (int32) += sum over k of A[m][k] (int8) * B[k / 4][4 n + k % 4] (int8).
  template <int C, int A, int B>
  static void DotSignedSigned() {
    __asm__ volatile("tdpbssd %%tmm%c2, %%tmm%c1, %%tmm%c0" : : "i"(C), "i"(A), "i"(B));
  }
  // C[m][n] (f32) += sum over pairs k of A[m][2k] * B[k][2n] + A[m][2k + 1] * B[k][2n + 1]
  // (bf16 operands, f32 sums; needs AMX-BF16). The unit's order and rounding of the sums is not
  // documented: measured on a Sapphire Rapids, it matches no sequence of f32 roundings, so
  // results are checked within a bound, not bit for bit.
  template <int C, int A, int B>
  static void DotBf16() {
    __asm__ volatile("tdpbf16ps %%tmm%c2, %%tmm%c1, %%tmm%c0" : : "i"(C), "i"(A), "i"(B));
  }
};

}  // namespace tinyserve::kernels::amx
