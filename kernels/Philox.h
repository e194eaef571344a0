// Philox4x32-10 counter-based random numbers (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11),
// shared by the CPU and CUDA kernels.
//
// One draw is a pure function of (key, counter): ten rounds of
//   (c0, c1, c2, c3) <- (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))
// with the key bumped by the Weyl constants (W0, W1) between rounds.
// meg's mapping: key = (seed low 32 bits, seed high 32 bits),
//                counter = (index low 32 bits, index high 32 bits, step, stream),
// where `index` is the GLOBAL element index of the tensor being masked and `stream` identifies the op. A mask then
// does not depend on how the tensor is split across ranks, and CPU and GPU agree.
// uniform() takes the top 24 bits of the first output word: u = (w0 >> 8) * 2^-24, in [0, 1).
#ifndef MEG_KERNELS_PHILOX_H
#define MEG_KERNELS_PHILOX_H

#include <cstdint>

#ifdef __CUDACC__
#define MEG_HOST_DEVICE __host__ __device__
#else
#define MEG_HOST_DEVICE
#endif

namespace meg::kernels {

struct Philox4x32 {
  uint32_t v[4];
};

/// Which random stream a draw belongs to: the run's seed, the op (stream) and the training step.
struct PhiloxKey {
  uint64_t seed = 0;
  uint32_t stream = 0;
  uint32_t step = 0;
};

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

/// The raw Philox4x32-10 block function.
MEG_HOST_DEVICE inline Philox4x32 philox4x32(Philox4x32 ctr, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * ctr.v[0];
    uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * ctr.v[2];
    Philox4x32 next;
    next.v[0] = static_cast<uint32_t>(p1 >> 32) ^ ctr.v[1] ^ k0;
    next.v[1] = static_cast<uint32_t>(p1);
    next.v[2] = static_cast<uint32_t>(p0 >> 32) ^ ctr.v[3] ^ k1;
    next.v[3] = static_cast<uint32_t>(p0);
    ctr = next;
  }
  return ctr;
}

/// Uniform float in [0, 1) for element `index` of the stream (seed, stream, step).
MEG_HOST_DEVICE inline float uniform(uint64_t seed, uint32_t stream, uint32_t step, uint64_t index) {
  Philox4x32 ctr = {{static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), step, stream}};
  Philox4x32 out = philox4x32(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return static_cast<float>(out.v[0] >> 8) * (1.0f / 16777216.0f);
}

MEG_HOST_DEVICE inline float uniform(const PhiloxKey &key, uint64_t index) {
  return uniform(key.seed, key.stream, key.step, index);
}

/// Dropout decision for element `index`: kept iff uniform >= p (so p == 0 keeps everything).
MEG_HOST_DEVICE inline bool dropoutKeep(const PhiloxKey &key, uint64_t index, float p) {
  return uniform(key, index) >= p;
}

} // namespace meg::kernels

#endif // MEG_KERNELS_PHILOX_H
