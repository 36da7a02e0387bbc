// Command gonet is a statically linked Go client and server (CGO_ENABLED=0:
// every socket call is the Go runtime's own raw syscall, which LD_PRELOAD
// never sees) for the tests of ffexec. Subcommands:
//
//	gonet serve ADDR [-n K|-once] [-v]   net/http: /bytes?n=N and /whoami
//	gonet get URL [-n N] [-t DUR]        one request, checked
//	gonet rate URL [-d SEC] [-c W] [-json]
//	                                     a new TCP connection per request
//	gonet echo-serve ADDR [-n K]         raw TCP echo
//	gonet echo ADDR [-n BYTES]           send BYTES, read them back, check
//
// What each prints is in tests/progs/README.md. Byte i of every stream is
// (i*7+3)&0xff, as in rawnet. Exit status: 0 on success, 1 on a failed check
// (after a "bad ..." line on stdout), 2 on a usage error.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
)

var commands = map[string]func([]string) int{
	"serve":      cmdServe,
	"get":        cmdGet,
	"rate":       cmdRate,
	"echo-serve": cmdEchoServe,
	"echo":       cmdEcho,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: gonet %v ARGS... (see tests/progs/README.md)\n", names)
		os.Exit(2)
	}
	os.Exit(commands[os.Args[1]](os.Args[2:]))
}

// parseArgs parses fs's flags wherever they stand among the arguments (the
// flag package alone stops at the first positional one) and returns the
// positional arguments, which must number npos.
func parseArgs(fs *flag.FlagSet, args []string, npos int) ([]string, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, false
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != npos {
		fmt.Fprintf(os.Stderr, "gonet %s: want %d argument(s), got %d\n", fs.Name(), npos, len(pos))
		return nil, false
	}
	return pos, true
}

// bad prints the failure line a test greps for and returns exit status 1.
func bad(format string, a ...interface{}) int {
	fmt.Printf("bad "+format+"\n", a...)
	return 1
}

// pattern fills b with the stream bytes that start at offset off.
func pattern(off int64, b []byte) {
	for i := range b {
		b[i] = byte((off+int64(i))*7 + 3)
	}
}

// checkPattern compares b with the stream bytes at offset off and returns
// the offset of the first difference, or -1.
func checkPattern(off int64, b []byte) int64 {
	for i, c := range b {
		if c != byte((off+int64(i))*7+3) {
			return off + int64(i)
		}
	}
	return -1
}
