// SPDX-License-Identifier: MIT

// Command gobench is the Go peer for weft's microbenchmarks: the same
// workloads written the idiomatic Go way, so compare.py can put Go's
// scheduler next to weft's. GOMAXPROCS comes from the environment (the
// runner sets 1 or 2 to match weft's worker count).
//
// Usage: gobench NAME [-n N] [-pending P]; NAME is spawn, pingpong, yield,
// forkjoin, parked, sleep-lateness, pingpong-deadline, pingpong-select or
// scope. The last stdout line is ns_per_op=<float>, bytes_per_task=<float>
// for parked, or p99_ns=<float> for sleep-lateness. -pending P first parks P
// goroutines in a one-hour time.Sleep (P pending timers), for the timer
// cases. Standard library only, so it builds offline.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// pending is -pending: goroutines parked in a long sleep before a timer
// case starts, each one pending timer.
var pending int

// parkSleepers starts p goroutines that sleep for an hour and returns once
// they have all called time.Sleep (they are left behind at exit).
func parkSleepers(p int) {
	var started sync.WaitGroup
	started.Add(p)
	for i := 0; i < p; i++ {
		go func() {
			started.Done()
			time.Sleep(time.Hour)
		}()
	}
	started.Wait()
	runtime.Gosched() // let the last starters reach their sleep
}

// xorshift: the same cheap generator as weft-microbench, one per goroutine.
type xorshift uint64

func (s *xorshift) next() uint64 {
	x := uint64(*s)
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	*s = xorshift(x)
	return x
}

func randMs1to100(s *xorshift) time.Duration {
	return time.Millisecond + time.Duration(s.next()%uint64(99*time.Millisecond+1))
}

// sleepLateness: n goroutines start together and each sleeps 10 times for a
// random 1-100 ms; how late each sleep returns, as percentiles (the shape of
// weft-microbench sleep-lateness). Returns p99 in ns.
func sleepLateness(n int) float64 {
	const rounds = 10
	parkSleepers(pending)
	samples := make([]int64, n*rounds)
	gate := make(chan struct{})
	var ready, done sync.WaitGroup
	ready.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func(i int) {
			seed := xorshift(0x2545f4914f6cdd1d ^ uint64(i+1)*0x9e3779b97f4a7c15)
			ready.Done()
			<-gate
			for r := 0; r < rounds; r++ {
				d := randMs1to100(&seed)
				due := time.Now().Add(d)
				time.Sleep(d)
				samples[i*rounds+r] = int64(time.Since(due))
			}
			done.Done()
		}(i)
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	done.Wait()
	wall := time.Since(start)
	sort.Slice(samples, func(a, b int) bool { return samples[a] < samples[b] })
	ns := len(samples)
	fmt.Printf("pending=%d sleepers=%d sleeps=%d wall_s=%.2f\n", pending, n, ns,
		wall.Seconds())
	fmt.Printf("p50_ns=%d p99_ns=%d p999_ns=%d max_ns=%d\n", samples[ns/2],
		samples[ns*99/100], samples[ns*999/1000], samples[ns-1])
	return float64(samples[ns*99/100])
}

// pingpongDeadline: pingpong where every receive has a one-second timeout
// that does not expire, written as Go code usually writes a receive with a
// timeout: a timer, a select, and Stop once the message came.
func pingpongDeadline(n int) float64 {
	parkSleepers(pending)
	recv := func(ch chan int) int {
		t := time.NewTimer(time.Second)
		select {
		case v := <-ch:
			t.Stop()
			return v
		case <-t.C:
			fmt.Fprintln(os.Stderr, "receive timed out")
			os.Exit(1)
		}
		return 0
	}
	ping, pong := make(chan int), make(chan int)
	rounds := n / 2
	go func() {
		for i := 0; i < rounds; i++ {
			pong <- recv(ping)
		}
	}()
	start := time.Now()
	for i := 0; i < rounds; i++ {
		ping <- i
		recv(pong)
	}
	return float64(time.Since(start).Nanoseconds()) / float64(2*rounds)
}

// pingpong-select: pingpong with every receive a select over its channel
// and a quit channel that never becomes ready, as a receive that can be
// stopped is written in Go.
func pingpongSelect(n int) float64 {
	recv := func(ch chan int, quit chan struct{}) int {
		select {
		case v := <-ch:
			return v
		case <-quit:
			fmt.Fprintln(os.Stderr, "quit")
			os.Exit(1)
		}
		return 0
	}
	run := func(rounds int) time.Duration {
		ping, pong, quit := make(chan int), make(chan int), make(chan struct{})
		go func() {
			for i := 0; i < rounds; i++ {
				pong <- recv(ping, quit)
			}
		}()
		start := time.Now()
		for i := 0; i < rounds; i++ {
			ping <- i
			recv(pong, quit)
		}
		return time.Since(start)
	}
	run(n/20 + 1)
	rounds := n / 2
	return float64(run(rounds).Nanoseconds()) / float64(2*rounds)
}

// scope: a deadline entered and left with nothing inside, Go's way:
// context.WithTimeout and its cancel.
func scope(n int) float64 {
	var sink int64
	bg := context.Background()
	start := time.Now()
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(bg, time.Second)
		if ctx.Err() != nil {
			atomic.AddInt64(&sink, 1)
		}
		cancel()
	}
	elapsed := time.Since(start)
	if sink != 0 {
		fmt.Fprintln(os.Stderr, "a one-second timeout expired at once")
		os.Exit(1)
	}
	return float64(elapsed.Nanoseconds()) / float64(n)
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

	"sleep-lateness":    {sleepLateness, 10000, "p99_ns"},
	"pingpong-deadline": {pingpongDeadline, 2000000, "ns_per_op"},
	"pingpong-select":   {pingpongSelect, 2000000, "ns_per_op"},
	"scope":             {scope, 5000000, "ns_per_op"},
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gobench spawn|pingpong|yield|forkjoin|parked|"+
		"sleep-lateness|pingpong-deadline|pingpong-select|scope [-n N] [-pending P]")
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
	n := fs.Int("n", b.defaultN, "iterations (tasks for parked, sleepers for sleep-lateness)")
	fs.IntVar(&pending, "pending", 0, "goroutines parked in a one-hour sleep first")
	fs.Parse(os.Args[2:])
	if *n < 1 || pending < 0 || fs.NArg() != 0 {
		usage()
	}
	fmt.Printf("gomaxprocs=%d n=%d\n", runtime.GOMAXPROCS(0), *n)
	v := b.run(*n)
	if b.unit == "p99_ns" {
		fmt.Printf("%s=%.0f\n", b.unit, v)
	} else {
		fmt.Printf("%s=%.3f\n", b.unit, v)
	}
}
