// The HTTP side of gonet: the server and its two handlers, one checked
// request (get) and the connect-rate client (rate).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

const maxBytes = 1 << 34 // the largest /bytes?n= served

func cmdServe(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	limit := fs.Int64("n", 0, "exit after this many requests (0: on SIGTERM/SIGINT only)")
	once := fs.Bool("once", false, "same as -n 1")
	verbose := fs.Bool("v", false, "print a line per request")
	pos, ok := parseArgs(fs, args, 1)
	if !ok {
		return 2
	}
	if *once {
		*limit = 1
	}
	ln, err := net.Listen("tcp", pos[0])
	if err != nil {
		return bad("listen: %v", err)
	}
	fmt.Printf("listening %s\n", ln.Addr())

	var served int64
	done := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/bytes", handleBytes)
	mux.HandleFunc("/whoami", handleWhoami)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mux.ServeHTTP(w, r)
			if *verbose {
				fmt.Printf("req %s remote=%s\n", r.URL.RequestURI(), r.RemoteAddr)
			}
			if atomic.AddInt64(&served, 1) == *limit {
				close(done)
			}
		})}
	sig, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
		return bad("serve: %v", err)
	case <-done:
	case <-sig.Done():
	}
	// Shutdown lets the last response go out before the connection closes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err = srv.Shutdown(ctx); err != nil {
		return bad("shutdown: %v", err)
	}
	fmt.Printf("served %d\n", atomic.LoadInt64(&served))
	return 0
}

// handleBytes answers /bytes?n=N with N pattern bytes.
func handleBytes(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
	if err != nil || n < 0 || n > maxBytes {
		http.Error(w, "want /bytes?n=N", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	buf := make([]byte, 64<<10)
	for off := int64(0); off < n; {
		chunk := buf
		if n-off < int64(len(chunk)) {
			chunk = chunk[:n-off]
		}
		pattern(off, chunk)
		if _, err := w.Write(chunk); err != nil {
			return
		}
		off += int64(len(chunk))
	}
}

// handleWhoami answers with the connection's two ends as the server sees them.
func handleWhoami(w http.ResponseWriter, r *http.Request) {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "server remote=%s local=%s\n", r.RemoteAddr, local)
}

// readBytes drains a /bytes answer, checking every byte; returns the count.
func readBytes(body io.Reader) (int64, error) {
	buf := make([]byte, 64<<10)
	var off int64
	for {
		m, err := body.Read(buf)
		if at := checkPattern(off, buf[:m]); at >= 0 {
			return off, fmt.Errorf("byte %d differs", at)
		}
		off += int64(m)
		if errors.Is(err, io.EOF) {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// wantBytes is the N of a /bytes?n=N URL, or -1 for any other URL.
func wantBytes(u *url.URL) int64 {
	if u.Path != "/bytes" {
		return -1
	}
	n, err := strconv.ParseInt(u.Query().Get("n"), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func cmdGet(args []string) int {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	n := fs.Int64("n", -1, "ask /bytes for N bytes (sets ?n=N)")
	timeout := fs.Duration("t", 30*time.Second, "give up after this long")
	pos, ok := parseArgs(fs, args, 1)
	if !ok {
		return 2
	}
	u, err := url.Parse(pos[0])
	if err != nil {
		return bad("url: %v", err)
	}
	if *n >= 0 {
		q := u.Query()
		q.Set("n", strconv.FormatInt(*n, 10))
		u.RawQuery = q.Encode()
	}
	var local, remote net.Addr
	dialer := &net.Dialer{Timeout: *timeout}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err == nil {
				local, remote = c.LocalAddr(), c.RemoteAddr()
			}
			return c, err
		}}}
	resp, err := client.Get(u.String())
	if err != nil {
		return bad("get: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return bad("status %d", resp.StatusCode)
	}
	if want := wantBytes(u); want >= 0 {
		got, err := readBytes(resp.Body)
		if err != nil || got != want {
			return bad("bytes got %d want %d: %v", got, want, err)
		}
		fmt.Printf("ok %d\n", got)
	} else if _, err := io.Copy(os.Stdout, io.LimitReader(resp.Body, 1<<20)); err != nil {
		return bad("body: %v", err)
	}
	fmt.Printf("client local=%s remote=%s\n", local, remote)
	return 0
}
