// The work split of the full-chip CUDA batch-norm kernels (kernels/cuda/bn_chip*.cu), written as
// plain host/device functions so the CPU tests (tests/ops/test_norm_gpu.cpp) replay it exactly:
//   ReducePlan: each channel's M = N*S values cut into `tiles` tiles of consecutive (n, s)
//     positions; one block of kThreads threads per (channel, tile); thread tid of a tile visits
//     units tile_start + tid, + kThreads, ... (a unit is `vec` consecutive elements of one plane).
//   PlaneWalk: a thread's (plane position, element offset) along that walk, advanced without
//     any division (one division at the start of the walk).
//   ElementPlan / ChannelWalk: the grid-stride elementwise passes (normalise, dx) over the whole
//     [N, C, S] tensor, tracking each unit's channel without a division per element.
//   RowPlan: the channels-last (NHWC) reduction: M = N*S rows of C channels; a block takes
//     kRowChannels consecutive channels (a warp reads them in one coalesced row segment) by
//     kRowLanes rows at a time, over one tile of rows; the elementwise passes use ElementPlan
//     with S = 1 (each row of C values is C planes of one element).
//   shifted_moments: mean and biased variance from the per-channel shifted sums.
#pragma once
#include <cstdint>
#include "core/layout.h"  // RETORT_HD

namespace retort::kernels::bn {

constexpr int kThreads = 256;               // threads per block of every full-chip kernel
constexpr int64_t kMinTileElements = 1024;  // at least 4 elements per thread in a tile
constexpr int64_t kMaxTiles = 1024;         // tiles per channel: bounds the merge of partials

// How the statistics reduction splits the channels: C * tiles blocks.
struct ReducePlan {
  int64_t N = 0, C = 0, S = 0;
  int vec = 1;                 // elements per unit: 4 (S % 4 == 0, aligned pointers) or 1
  int64_t units = 0;           // units per channel, N * S / vec
  int64_t units_per_tile = 0;  // the last tile may hold fewer
  int64_t tiles = 0;           // tiles per channel, each non-empty
  // A thread's step of kThreads units is step_planes whole planes plus step_rest elements
  // (step_rest < S); jump is the element offset that step adds before a plane carry.
  int64_t step_planes = 0, step_rest = 0, jump = 0;
  int64_t carry = 0;  // offset added when s passes the end of a plane: (C - 1) * S

  RETORT_HD int64_t tile_begin(int64_t t) const { return t * units_per_tile; }
  RETORT_HD int64_t tile_end(int64_t t) const {
    const int64_t e = (t + 1) * units_per_tile;
    return e < units ? e : units;
  }
};

// The tiles per channel that fill `target_blocks` blocks (the chip: SMs x resident blocks per
// SM) without tiles under kMinTileElements (unless the whole channel is smaller) or over
// kMaxTiles per channel.
inline ReducePlan make_reduce_plan(int64_t N, int64_t C, int64_t S, int vec, int64_t target_blocks) {
  ReducePlan p;
  p.N = N;
  p.C = C;
  p.S = S;
  p.vec = vec;
  p.units = N * S / vec;
  const int64_t min_units = kMinTileElements / vec;
  const int64_t most_tiles = (p.units + min_units - 1) / min_units;
  int64_t tiles = target_blocks / C;
  if (tiles > most_tiles) tiles = most_tiles;
  if (tiles > kMaxTiles) tiles = kMaxTiles;
  if (tiles < 1) tiles = 1;
  p.units_per_tile = (p.units + tiles - 1) / tiles;
  p.tiles = (p.units + p.units_per_tile - 1) / p.units_per_tile;  // no empty last tile
  const int64_t step = int64_t(kThreads) * vec;
  p.step_planes = step / S;
  p.step_rest = step - p.step_planes * S;
  p.jump = p.step_planes * C * S + p.step_rest;
  p.carry = (C - 1) * S;
  return p;
}

// A thread's position in channel c: unit u, in-plane index s and element offset in [N, C, S].
struct PlaneWalk {
  int64_t u, s, offset;
  RETORT_HD PlaneWalk(const ReducePlan& p, int64_t c, int64_t u0) : u(u0) {
    const int64_t j = u0 * p.vec, n = j / p.S;
    s = j - n * p.S;
    offset = (n * p.C + c) * p.S + s;
  }
  RETORT_HD void advance(const ReducePlan& p) {
    u += kThreads;
    s += p.step_rest;
    offset += p.jump;
    if (s >= p.S) {
      s -= p.S;
      offset += p.carry;
    }
  }
};

// The grid-stride elementwise passes: `blocks` blocks of kThreads threads over total_units
// units of vec elements (element offset = unit * vec); the grid's step is step_channels planes
// modulo C (whole planes of the step, reduced mod C) plus step_rest elements (< S).
struct ElementPlan {
  int64_t C = 0, S = 0;
  int vec = 1;
  int64_t total_units = 0, blocks = 0, stride = 0;  // stride = blocks * kThreads units
  int64_t step_channels = 0, step_rest = 0;
};

inline ElementPlan make_element_plan(int64_t N, int64_t C, int64_t S, int vec, int64_t max_blocks) {
  ElementPlan p;
  p.C = C;
  p.S = S;
  p.vec = vec;
  p.total_units = N * C * S / vec;
  int64_t blocks = (p.total_units + kThreads - 1) / kThreads;
  if (blocks > max_blocks) blocks = max_blocks;
  p.blocks = blocks < 1 ? 1 : blocks;
  p.stride = p.blocks * kThreads;
  const int64_t step = p.stride * vec, planes = step / S;
  p.step_channels = planes % C;
  p.step_rest = step - planes * S;
  return p;
}

// A thread's unit u of the whole tensor and that unit's channel c (and in-plane index s).
struct ChannelWalk {
  int64_t u, s, c;
  RETORT_HD ChannelWalk(const ElementPlan& p, int64_t u0) : u(u0) {
    const int64_t j = u0 * p.vec, plane = j / p.S;
    s = j - plane * p.S;
    c = plane % p.C;
  }
  RETORT_HD void advance(const ElementPlan& p) {
    u += p.stride;
    s += p.step_rest;
    c += p.step_channels;
    if (s >= p.S) {
      s -= p.S;
      ++c;
    }
    if (c >= p.C) c -= p.C;  // c <= (C - 1) + (C - 1) + 1 here, so once is enough
  }
};

// ---- channels-last (NHWC): rows of C channels

constexpr int kRowChannels = 32;                     // channels per block: threadIdx.x % 32
constexpr int kRowLanes = kThreads / kRowChannels;   // rows at a time: threadIdx.x / 32
constexpr int64_t kMinTileRows = 8 * kRowLanes;      // at least 8 rows per lane in a tile

// chunks (of kRowChannels channels) x tiles (of rows_per_tile rows) blocks; block b is chunk
// b / tiles, tile b % tiles. Lane l of a block visits rows tile_begin + l, + kRowLanes, ...
struct RowPlan {
  int64_t M = 0, C = 0;
  int64_t chunks = 0, rows_per_tile = 0, tiles = 0;

  RETORT_HD int64_t tile_begin(int64_t t) const { return t * rows_per_tile; }
  RETORT_HD int64_t tile_end(int64_t t) const {
    const int64_t e = (t + 1) * rows_per_tile;
    return e < M ? e : M;
  }
};

// The row tiles that fill `target_blocks` blocks, within [1, kMaxTiles] tiles and tiles of at
// least kMinTileRows rows (unless M is smaller), none empty.
inline RowPlan make_row_plan(int64_t M, int64_t C, int64_t target_blocks) {
  RowPlan p;
  p.M = M;
  p.C = C;
  p.chunks = (C + kRowChannels - 1) / kRowChannels;
  const int64_t most_tiles = M / kMinTileRows;  // whole tiles of kMinTileRows rows
  int64_t tiles = target_blocks / p.chunks;
  if (tiles > most_tiles) tiles = most_tiles;
  if (tiles > kMaxTiles) tiles = kMaxTiles;
  if (tiles < 1) tiles = 1;
  p.rows_per_tile = (M + tiles - 1) / tiles;
  p.tiles = (M + p.rows_per_tile - 1) / p.rows_per_tile;
  return p;
}

// A channel's mean and biased variance from its M values' shifted sums s1 = sum(x - K) and
// s2 = sum((x - K)^2), K being one of the channel's values (so |mean - K| is of the order of
// the spread and the subtraction below loses nothing that matters in double).
RETORT_HD inline void shifted_moments(double K, double s1, double s2, int64_t M, double& mean, double& var) {
  const double d = s1 / double(M);
  mean = K + d;
  var = s2 / double(M) - d * d;
  if (var < 0) var = 0;
}

}  // namespace retort::kernels::bn
