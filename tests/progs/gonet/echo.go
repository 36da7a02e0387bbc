// gonet's raw TCP echo: a server that echoes each connection until EOF and a
// client that checks what comes back. The connect is Go's own (non-blocking
// socket, EINPROGRESS, wait for writability, SO_ERROR).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

func cmdEchoServe(args []string) int {
	fs := flag.NewFlagSet("echo-serve", flag.ContinueOnError)
	limit := fs.Int("n", 0, "exit after this many connections (0: never)")
	pos, ok := parseArgs(fs, args, 1)
	if !ok {
		return 2
	}
	ln, err := net.Listen("tcp", pos[0])
	if err != nil {
		return bad("listen: %v", err)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	var wg sync.WaitGroup
	for i := 0; *limit == 0 || i < *limit; i++ {
		c, err := ln.Accept()
		if err != nil {
			return bad("accept: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			echoConn(c.(*net.TCPConn))
		}()
	}
	wg.Wait()
	return 0
}

// echoConn echoes c until EOF, then closes it and prints one line. A plain
// read/write loop, so the calls are read(2) and write(2), not splice(2).
func echoConn(c *net.TCPConn) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	var total int64
	for {
		m, err := c.Read(buf)
		if m > 0 {
			if _, werr := c.Write(buf[:m]); werr != nil {
				fmt.Printf("bad echo peer %s: %v\n", c.RemoteAddr(), werr)
				return
			}
			total += int64(m)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Printf("bad echo peer %s: %v\n", c.RemoteAddr(), err)
			return
		}
	}
	c.CloseWrite()
	fmt.Printf("peer %s echoed %d\n", c.RemoteAddr(), total)
}

// sendPattern writes n pattern bytes, then half-closes.
func sendPattern(c *net.TCPConn, n int64) error {
	buf := make([]byte, 64<<10)
	for off := int64(0); off < n; {
		chunk := buf
		if n-off < int64(len(chunk)) {
			chunk = chunk[:n-off]
		}
		pattern(off, chunk)
		if _, err := c.Write(chunk); err != nil {
			return err
		}
		off += int64(len(chunk))
	}
	return c.CloseWrite()
}

func cmdEcho(args []string) int {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	n := fs.Int64("n", 1<<20, "bytes to send")
	timeout := fs.Duration("t", 60*time.Second, "give up after this long")
	pos, ok := parseArgs(fs, args, 1)
	if !ok || *n < 0 {
		return 2
	}
	conn, err := net.DialTimeout("tcp", pos[0], *timeout)
	if err != nil {
		return bad("dial: %v", err)
	}
	c := conn.(*net.TCPConn)
	defer c.Close()
	c.SetDeadline(time.Now().Add(*timeout))
	werr := make(chan error, 1)
	go func() { werr <- sendPattern(c, *n) }()
	got, err := readBytes(c)
	if err != nil {
		return bad("read after %d bytes: %v", got, err)
	}
	if err = <-werr; err != nil {
		return bad("write: %v", err)
	}
	if got != *n {
		return bad("echoed %d bytes, want %d", got, *n)
	}
	fmt.Printf("ok %d local %s peer %s\n", got, c.LocalAddr(), c.RemoteAddr())
	return 0
}
