// Command clockprobe is the vdso tests' target: a static Go program (build
// it with CGO_ENABLED=0) that answers commands on stdin.
//
//	now          "<time.Now ns> <real ns>" (real: a raw clock_gettime system call, which no patch reaches)
//	threads N MS N goroutines compare the two for MS ms; prints how many readings were
//	             off real by about 0, 300 s and 600 s, and how many by anything else
//	bench N      ns per time.Now over N calls
//	spawn        starts a copy of itself and prints its pid
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

func real() int64 {
	var ts syscall.Timespec
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, 0, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

func main() {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "now":
			fmt.Println(time.Now().UnixNano(), real())
		case "threads":
			var n, ms int
			fmt.Sscan(f[1], &n)
			fmt.Sscan(f[2], &ms)
			var mu sync.Mutex
			counts := map[string]int{}
			var wg sync.WaitGroup
			end := time.Now().Add(time.Duration(ms) * time.Millisecond)
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// One OS thread each: the patch holds threads, not goroutines.
					runtime.LockOSThread()
					local := map[string]int{}
					for i := 0; ; i++ {
						r0 := real()
						fake := time.Now().UnixNano()
						r1 := real()
						k := "other"
						for _, off := range []int64{0, 300, 600} {
							o := off * int64(time.Second)
							if fake-r1 <= o+int64(time.Millisecond) && fake-r0 >= o-int64(time.Millisecond) {
								k = fmt.Sprint(off)
							}
						}
						local[k]++
						if i%1000 == 0 && time.Until(end) < 0 {
							break
						}
					}
					mu.Lock()
					for k, v := range local {
						counts[k] += v
					}
					mu.Unlock()
				}()
			}
			wg.Wait()
			fmt.Println(counts["0"], counts["300"], counts["600"], counts["other"])
		case "bench":
			var n int
			fmt.Sscan(f[1], &n)
			start := time.Now()
			var sink int64
			for range n {
				sink += time.Now().UnixNano()
			}
			fmt.Println(time.Since(start).Nanoseconds()/int64(n), sink&1)
		case "spawn":
			cmd := exec.Command(os.Args[0])
			cmd.Stdin, _ = os.Open(os.DevNull)
			if err := cmd.Start(); err != nil {
				fmt.Println(-1)
				continue
			}
			fmt.Println(cmd.Process.Pid)
		}
	}
}
