// A plain model of the AMX tile unit with HardwareTiles' interface (kernels/cpu/amx_tiles.h), so
// the AMX matmul kernel runs, and is tested bit for bit, on CPUs without AMX. It follows Intel's
// pseudocode: a load fills the configured rows and bytes of a tile and zeroes the rest; TDPBSUD
// (TDPBSSD) sums, per int32 element, the products of 4 signed bytes of A's row with the 4
// unsigned (signed) bytes of B's column group, row k of B holding elements 4k..4k+3 of every
// column. State is per thread, like the hardware's. Slow; tests only.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/amx_tiles.h"

namespace tinyserve::kernels::ref {

struct ModelTiles {
  struct State {
    amx::TileConfig cfg;
    uint8_t tmm[8][16 * 64] = {};
  };
  static State& state() {
    thread_local State s;
    return s;
  }

  static void Configure(const amx::TileConfig& cfg) { state() = State{cfg, {}}; }
  static void Release() { state() = State{}; }
  template <int T>
  static void Load(const void* base, int64_t stride) {
    State& s = state();
    std::memset(s.tmm[T], 0, sizeof(s.tmm[T]));
    for (int r = 0; r < s.cfg.rows[T]; ++r)
      std::memcpy(s.tmm[T] + r * 64, static_cast<const uint8_t*>(base) + r * stride,
                  s.cfg.colsb[T]);
  }
  template <int T>
  static void Store(void* base, int64_t stride) {
    const State& s = state();
    for (int r = 0; r < s.cfg.rows[T]; ++r)
      std::memcpy(static_cast<uint8_t*>(base) + r * stride, s.tmm[T] + r * 64, s.cfg.colsb[T]);
  }
  template <int T>
  static void Zero() {
    std::memset(state().tmm[T], 0, sizeof(state().tmm[T]));
  }
  template <int C, int A, int B>
  static void DotSignedUnsigned() {
    DotInt8<C, A, B, uint8_t>();
  }
  template <int C, int A, int B>
  static void DotSignedSigned() {
    DotInt8<C, A, B, int8_t>();
  }
  // Signed bytes of A times bytes of B read as BByte (uint8_t or int8_t).
  template <int C, int A, int B, class BByte>
  static void DotInt8() {
    State& s = state();
    for (int m = 0; m < s.cfg.rows[C]; ++m) {
      for (int n = 0; n < s.cfg.colsb[C] / 4; ++n) {
        int32_t c;
        std::memcpy(&c, s.tmm[C] + m * 64 + n * 4, 4);
        for (int k = 0; k < s.cfg.colsb[A]; ++k) {
          const auto a = static_cast<int8_t>(s.tmm[A][m * 64 + k]);
          const auto b = static_cast<BByte>(s.tmm[B][(k / 4) * 64 + n * 4 + k % 4]);
          // Wrapping int32 sum, as the hardware's.
          c = static_cast<int32_t>(static_cast<uint32_t>(c) + static_cast<uint32_t>(a * b));
        }
        std::memcpy(s.tmm[C] + m * 64 + n * 4, &c, 4);
      }
    }
  }
  // The sums in pair order, each product exact and each sum rounded to f32: the hardware rounds
  // differently (amx_tiles.h), so kernels run on this model are checked within the same bound.
  template <int C, int A, int B>
  static void DotBf16() {
    State& s = state();
    auto bf16 = [](const uint8_t* p) {
      uint16_t h;
      std::memcpy(&h, p, 2);
      const uint32_t bits = uint32_t{h} << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    };
    for (int m = 0; m < s.cfg.rows[C]; ++m) {
      for (int n = 0; n < s.cfg.colsb[C] / 4; ++n) {
        float c;
        std::memcpy(&c, s.tmm[C] + m * 64 + n * 4, 4);
        for (int k = 0; k < s.cfg.colsb[A] / 4; ++k) {
          const uint8_t* a = s.tmm[A] + m * 64 + 4 * k;
          const uint8_t* b = s.tmm[B] + k * 64 + 4 * n;
          c = std::fma(bf16(a), bf16(b), c);
          c = std::fma(bf16(a + 2), bf16(b + 2), c);
        }
        std::memcpy(s.tmm[C] + m * 64 + n * 4, &c, 4);
      }
    }
  }
};

}  // namespace tinyserve::kernels::ref
