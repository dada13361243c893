// Owning, 64-byte aligned, uninitialised storage for kernels (activations, repacked weights).
// Move-only; not thread-safe.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>

namespace tinyserve {

template <typename T>
class AlignedBuffer {
 public:
  static constexpr size_t kAlignment = 64;
  // From this size on, buffers start on a 2 MiB boundary and ask for transparent huge pages:
  // one page fault per 2 MiB instead of per 4 KiB when they are first written (loading a model
  // writes every packed weight once; in a VM each fault is costly), and fewer TLB misses after.
  static constexpr size_t kHugePage = size_t{2} << 20;
  static constexpr size_t kHugeFrom = 2 * kHugePage;

  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t size) { Resize(size); }
  AlignedBuffer(AlignedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }

  // Discards the contents when the size changes.
  void Resize(size_t size) {
    if (size == size_) return;
    std::free(data_);
    data_ = nullptr;
    size_ = size;
    if (size == 0) return;
    const size_t align = size * sizeof(T) >= kHugeFrom ? kHugePage : kAlignment;
    const size_t bytes = (size * sizeof(T) + align - 1) / align * align;
    data_ = static_cast<T*>(std::aligned_alloc(align, bytes));
    if (data_ == nullptr) throw std::bad_alloc();
    // A hint: without THP (or with it off) the pages are simply small.
    if (align == kHugePage) madvise(data_, bytes, MADV_HUGEPAGE);
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tinyserve
