// Command patcher patches and restores one process's vDSO in a loop, for
// the vdso crash test, which SIGKILLs it at random moments: usage
// patcher PID OFFSET.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/faultline-dev/faultline/sidecar/vdso"
)

func main() {
	pid, _ := strconv.Atoi(os.Args[1])
	off, _ := time.ParseDuration(os.Args[2])
	for {
		pt, err := vdso.Patch(pid, vdso.Params{Enabled: true, Offset: off, Base: time.Now()})
		if err != nil {
			fmt.Fprintln(os.Stderr, "patch:", err)
			os.Exit(1)
		}
		if err := pt.Restore(); err != nil {
			fmt.Fprintln(os.Stderr, "restore:", err)
			os.Exit(1)
		}
	}
}
