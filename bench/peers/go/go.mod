// SPDX-License-Identifier: MIT
// Go peer for weft's microbenchmarks; standard library only, so it builds offline.
module weft/bench/gobench

go 1.19
