// SPDX-License-Identifier: MIT

// Command gobench is the Go peer for weft's microbenchmarks: the same
// workloads written the idiomatic Go way, so compare.py can put Go's
// scheduler next to weft's. GOMAXPROCS comes from the environment (the
// runner sets 1 or 2 to match weft's worker count).
//
// Usage: gobench NAME [-n N]; NAME is spawn, pingpong, yield, forkjoin or
// parked. The last stdout line is ns_per_op=<float>, or bytes_per_task=<float>
// for parked. Standard library only, so it builds offline.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// spawn: N empty goroutines started from one goroutine, then wait for all.
func spawn(n int) float64 {
	run := func(n int) time.Duration {
		var wg sync.WaitGroup
		start := time.Now()
		wg.Add(n)
		for i := 0; i < n; i++ {
			go wg.Done()
		}
		wg.Wait()
		return time.Since(start)
	}
	run(n/10 + 1) // warm-up: grow the heap and the free-g cache once
	return float64(run(n).Nanoseconds()) / float64(n)
}

// pingpong: two goroutines bounce a token over unbuffered channels; each
// send/receive pair is one one-way message.
func pingpong(n int) float64 {
	run := func(rounds int) time.Duration {
		ping, pong := make(chan int), make(chan int)
		go func() {
			for v := range ping {
				pong <- v
			}
			close(pong)
		}()
		start := time.Now()
		for i := 0; i < rounds; i++ {
			ping <- i
			<-pong
		}
		elapsed := time.Since(start)
		close(ping)
		<-pong // wait for the partner to exit before the next run
		return elapsed
	}
	run(n/20 + 1)
	rounds := n / 2
	return float64(run(rounds).Nanoseconds()) / float64(2*rounds)
}

// yield: two goroutines call runtime.Gosched in turn; ns per Gosched call.
func yield(n int) float64 {
	run := func(each int) time.Duration {
		var wg sync.WaitGroup
		wg.Add(2)
		start := time.Now()
		for g := 0; g < 2; g++ {
			go func() {
				for i := 0; i < each; i++ {
					runtime.Gosched()
				}
				wg.Done()
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	run(n/40 + 1)
	each := n / 2
	return float64(run(each).Nanoseconds()) / float64(2*each)
}

// fib spawns a goroutine for fib(n-1), computes fib(n-2) itself and joins
// the child through a channel: one spawn and one join per inner call, the
// same shape as weft-microbench's forkjoin.
func fib(n int) int {
	if n < 2 {
		return n
	}
	child := make(chan int, 1) // buffered: the child never waits on the parent
	go func() { child <- fib(n - 1) }()
	b := fib(n - 2)
	return <-child + b
}

// fibOnce computes fib(k) and checks the result, so a broken join cannot
// look fast.
func fibOnce(k int) {
	want, next := 0, 1
	for i := 0; i < k; i++ {
		want, next = next, want+next
	}
	if got := fib(k); got != want {
		fmt.Fprintf(os.Stderr, "fib(%d) = %d, want %d\n", k, got, want)
		os.Exit(1)
	}
}

// forkjoin: N repetitions of fib(30); ns per whole fib(30).
func forkjoin(n int) float64 {
	fibOnce(25) // warm-up at 1/11 of the work: grows the heap and g cache
	start := time.Now()
	for i := 0; i < n; i++ {
		fibOnce(30)
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// rssBytes reads the resident set size from /proc/self/statm (second field,
// in pages).
func rssBytes() float64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fields := strings.Fields(string(data))
	pages, err := strconv.ParseFloat(fields[1], 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return pages * float64(os.Getpagesize())
}

// parked: N goroutines blocked receiving on one channel; RSS growth per
// goroutine between before they exist and once all of them are parked.
func parked(n int) float64 {
	gate := make(chan struct{})
	var started, finished sync.WaitGroup
	started.Add(n)
	finished.Add(n)
	runtime.GC()
	before := rssBytes()
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-gate
			finished.Done()
		}()
	}
	started.Wait()
	runtime.Gosched() // let the last starters reach the receive and park
	after := rssBytes()
	close(gate)
	finished.Wait()
	fmt.Printf("rss_before=%.0f rss_after=%.0f tasks=%d\n", before, after, n)
	return (after - before) / float64(n)
}

type bench struct {
	run      func(int) float64
	defaultN int
	unit     string
}

var benches = map[string]bench{
	"spawn":    {spawn, 1000000, "ns_per_op"},
	"pingpong": {pingpong, 2000000, "ns_per_op"},
	"yield":    {yield, 10000000, "ns_per_op"},
	"forkjoin": {forkjoin, 1, "ns_per_op"},
	"parked":   {parked, 100000, "bytes_per_task"},
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gobench spawn|pingpong|yield|forkjoin|parked [-n N]")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	b, ok := benches[os.Args[1]]
	if !ok {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	n := fs.Int("n", b.defaultN, "iterations (tasks for parked)")
	fs.Parse(os.Args[2:])
	if *n < 1 || fs.NArg() != 0 {
		usage()
	}
	fmt.Printf("gomaxprocs=%d n=%d\n", runtime.GOMAXPROCS(0), *n)
	fmt.Printf("%s=%.3f\n", b.unit, b.run(*n))
}
