// SPDX-License-Identifier: MIT
// Go peers of weft's network benchmark; standard library only, so it builds offline.
module weft/bench/netpeer

go 1.19
