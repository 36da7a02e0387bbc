// gonet rate: sequential HTTP requests, each on a new TCP connection, from
// -c workers for -d seconds; what it measures is the connect path.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

type rateResult struct {
	URL        string  `json:"url"`
	Workers    int     `json:"workers"`
	Seconds    float64 `json:"seconds"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	PerSec     float64 `json:"per_sec"`
	FirstError string  `json:"first_error,omitempty"`
}

// oneRequest makes one request and checks its answer (the bytes too, for a
// /bytes URL).
func oneRequest(c *http.Client, u *url.URL, want int64) error {
	resp, err := c.Get(u.String())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if want < 0 {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	got, err := readBytes(resp.Body)
	if err == nil && got != want {
		err = fmt.Errorf("got %d bytes, want %d", got, want)
	}
	return err
}

func runRate(u *url.URL, workers int, d time.Duration) rateResult {
	client := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true}}
	want := wantBytes(u)
	var reqs, errs int64
	var first sync.Once
	res := rateResult{URL: u.String(), Workers: workers}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := oneRequest(client, u, want); err != nil {
					atomic.AddInt64(&errs, 1)
					first.Do(func() { res.FirstError = err.Error() })
				} else {
					atomic.AddInt64(&reqs, 1)
				}
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Requests, res.Errors = reqs, errs
	res.PerSec = float64(reqs) / res.Seconds
	return res
}

func cmdRate(args []string) int {
	fs := flag.NewFlagSet("rate", flag.ContinueOnError)
	secs := fs.Float64("d", 3, "run for this many seconds")
	workers := fs.Int("c", 1, "concurrent workers, each sequential")
	asJSON := fs.Bool("json", false, "print one JSON object instead of the text line")
	pos, ok := parseArgs(fs, args, 1)
	if !ok || *workers < 1 || *secs <= 0 {
		return 2
	}
	u, err := url.Parse(pos[0])
	if err != nil {
		return bad("url: %v", err)
	}
	res := runRate(u, *workers, time.Duration(*secs*float64(time.Second)))
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	} else {
		fmt.Printf("requests %d errors %d per_sec %.1f\n", res.Requests, res.Errors, res.PerSec)
	}
	if res.FirstError != "" {
		fmt.Fprintf(os.Stderr, "gonet rate: first error: %s\n", res.FirstError)
	}
	if res.Errors > 0 || res.Requests == 0 {
		return 1
	}
	return 0
}
