// Layer normalization over the last dim of [rows, n] (math as kernels/cpu/LayerNorm.h, biased variance):
//   mean = sum_j x_j / n,  rstd = 1 / sqrt(sum_j (x_j - mean)^2 / n + eps),  y_j = g_j (x_j - mean) rstd + b_j;
//   backward with gdy_j = g_j dy_j: dx_j = rstd (gdy_j - mean(gdy) - xhat_j mean(gdy xhat)),
//   dg_j = sum_rows dy_j xhat_j, db_j = sum_rows dy_j.
// One block per row; row sums in double through the fixed block tree. dg/db: rows cut into at most 64 fixed chunks,
// one thread per (column, chunk) summing its rows in order (double), then one thread per column adding the chunks in
// order: bit-identical run to run, no atomics.
#include "kernels/cuda/Common.cuh"

namespace meg::kernels::cuda {

namespace {

/// Row statistics with the whole block; every thread gets them.
__device__ void rowStats(const float *xr, int64_t n, float eps, float &mean, float &rstd) {
  double sum = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
    sum += xr[j];
  double mu = blockSum(sum) / double(n);
  double sq = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    double d = xr[j] - mu;
    sq += d * d;
  }
  sq = blockSum(sq);
  mean = float(mu);
  rstd = float(1.0 / sqrt(sq / double(n) + eps));
}

__global__ void forwardKernel(const float *x, const float *g, const float *b, int64_t rows, int64_t n, float eps,
                              float *y) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * n;
    float *yr = y + r * n;
    float mu, rs;
    rowStats(xr, n, eps, mu, rs);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      float xhat = (xr[j] - mu) * rs;
      yr[j] = (g ? g[j] * xhat : xhat) + (b ? b[j] : 0.0f);
    }
  }
}

__global__ void backwardRowsKernel(const float *x, const float *g, const float *dy, int64_t rows, int64_t n, float eps,
                                   float *dx, float *mean, float *rstd) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * n, *dyr = dy + r * n;
    float mu, rs;
    rowStats(xr, n, eps, mu, rs);
    double sumG = 0, sumGX = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      float gdy = g ? g[j] * dyr[j] : dyr[j];
      sumG += gdy;
      sumGX += double(gdy) * ((xr[j] - mu) * rs);
    }
    float meanG = float(blockSum(sumG) / double(n));
    float meanGX = float(blockSum(sumGX) / double(n));
    if (dx)
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        float gdy = g ? g[j] * dyr[j] : dyr[j];
        float xhat = (xr[j] - mu) * rs;
        dx[r * n + j] = rs * (gdy - meanG - xhat * meanGX);
      }
    if (threadIdx.x == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
  }
}

/// Rows are cut into at most this many fixed chunks for dg/db: partials per (chunk, column), summed in chunk order.
constexpr int64_t kRowChunks = kLayerNormRowChunks;

__global__ void backwardColumnsKernel(const float *x, const float *dy, const float *mean, const float *rstd,
                                      int64_t rows, int64_t n, int64_t chunkRows, double *partialG,
                                      double *partialB) {
  int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, chunk = blockIdx.y;
  if (c >= n)
    return;
  int64_t lo = chunk * chunkRows, hi = lo + chunkRows < rows ? lo + chunkRows : rows;
  double accG = 0, accB = 0;
  for (int64_t r = lo; r < hi; ++r) {
    float d = dy[r * n + c];
    accG += double(d) * ((x[r * n + c] - mean[r]) * rstd[r]);
    accB += d;
  }
  partialG[chunk * n + c] = accG;
  partialB[chunk * n + c] = accB;
}

__global__ void sumChunksKernel(const double *partialG, const double *partialB, int64_t chunks, int64_t n, float *dg,
                                float *db) {
  MEG_GRID_STRIDE(c, n) {
    double g = 0, b = 0;
    for (int64_t k = 0; k < chunks; ++k) {
      g += partialG[k * n + c];
      b += partialB[k * n + c];
    }
    if (dg)
      dg[c] = float(g);
    if (db)
      db[c] = float(b);
  }
}

} // namespace

cudaError_t layerNormForward(const float *x, const float *g, const float *b, int64_t rows, int64_t n, float eps,
                             float *y, cudaStream_t stream) {
  if (rows < 0 || n < 0)
    return cudaErrorInvalidValue;
  if (rows == 0 || n == 0)
    return cudaSuccess;
  forwardKernel<<<blocksFor(rows, 1), kThreads, 0, stream>>>(x, g, b, rows, n, eps, y);
  return launched();
}

cudaError_t layerNormBackward(const float *x, const float *g, const float *dy, int64_t rows, int64_t n, float eps,
                              float *dx, float *dg, float *db, float *scratch, cudaStream_t stream) {
  if (rows < 0 || n < 0 || !scratch)
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  if (rows == 0) {
    if (dg)
      MEG_CUDA_TRY(cudaMemsetAsync(dg, 0, size_t(n) * sizeof(float), stream));
    if (db)
      MEG_CUDA_TRY(cudaMemsetAsync(db, 0, size_t(n) * sizeof(float), stream));
    return cudaSuccess;
  }
  if ((n + kThreads - 1) / kThreads > kMaxBlocks)
    return cudaErrorInvalidValue;
  // Scratch: the row statistics (2 rows floats, so the doubles after them stay 8-byte aligned), then the partials.
  float *mean = scratch, *rstd = scratch + rows;
  double *partialG = reinterpret_cast<double *>(scratch + 2 * rows), *partialB = partialG + kRowChunks * n;
  backwardRowsKernel<<<blocksFor(rows, 1), kThreads, 0, stream>>>(x, g, dy, rows, n, eps, dx, mean, rstd);
  MEG_CUDA_TRY(launched());
  if (!dg && !db)
    return cudaSuccess;
  int64_t chunks = rows < kRowChunks ? rows : kRowChunks, chunkRows = (rows + chunks - 1) / chunks;
  chunks = (rows + chunkRows - 1) / chunkRows;
  dim3 grid(unsigned((n + kThreads - 1) / kThreads), unsigned(chunks));
  backwardColumnsKernel<<<grid, kThreads, 0, stream>>>(x, dy, mean, rstd, rows, n, chunkRows, partialG, partialB);
  MEG_CUDA_TRY(launched());
  sumChunksKernel<<<blocksFor(n), kThreads, 0, stream>>>(partialG, partialB, chunks, n, dg, db);
  return launched();
}

} // namespace meg::kernels::cuda
