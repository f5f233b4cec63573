// SPDX-License-Identifier: MIT

// netpeer is the Go side of weft's network benchmark (bench/net/netbench.py):
//
//	netpeer echo HOST:PORT   TCP echo, one goroutine per connection
//	netpeer http HOST:PORT   net/http answering every request with "hello\n"
//
// Both are what a Go programmer would write first, and run with GOMAXPROCS=1
// pinned to one CPU by the driver. Go's Write loops until every byte is
// written, so a short send never loses data. SIGTERM's default action ends
// the program.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func serveEcho(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func echo(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			// Out of descriptors and the like: keep serving the others.
			continue
		}
		go serveEcho(c)
	}
}

var hello = []byte("hello\n")

func httpHello(addr string) error {
	h := func(w http.ResponseWriter, r *http.Request) {
		// Set explicitly so that net/http does not sniff the body.
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	}
	return http.ListenAndServe(addr, http.HandlerFunc(h))
}

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "echo" && os.Args[1] != "http") {
		fmt.Fprintln(os.Stderr, "usage: netpeer echo|http HOST:PORT")
		os.Exit(2)
	}
	var err error
	if os.Args[1] == "echo" {
		err = echo(os.Args[2])
	} else {
		err = httpHello(os.Args[2])
	}
	fmt.Fprintln(os.Stderr, "netpeer:", err)
	os.Exit(1)
}
