package vdso

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The clock functions of this process's vDSO are found inside its mapping,
// and another process (mapped elsewhere, address randomization) has them at
// the same offsets from its own start: the same kernel image.
func TestTheClockFunctionsAreFoundInEveryProcess(t *testing.T) {
	self, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := "__vdso_clock_gettime"
	if runtime.GOARCH == "arm64" {
		want = "__kernel_clock_gettime"
	}
	addr, ok := self.Symbols[want]
	if !ok {
		t.Fatalf("no %s in %v", want, self.Symbols)
	}
	if addr < self.Start || addr >= self.End {
		t.Fatalf("%s at %#x, outside the vDSO %#x-%#x", want, addr, self.Start, self.End)
	}
	t.Logf("vDSO at %#x-%#x (%d bytes): %d clock functions, %s at +%#x", self.Start, self.End, self.End-self.Start, len(self.Symbols), want, addr-self.Start)

	child := exec.Command("sleep", "5")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	// Until it has exec'd, the child is a copy of this process.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(child.Process.Pid) + "/comm")
		if strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child did not exec sleep within 5s")
		}
	}
	// The kernel names the new program before it maps its vDSO: until
	// then the maps say there is none.
	var other *Image
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if other, err = Read(child.Process.Pid); !errors.Is(err, ErrNoVDSO) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range self.Symbols {
		if b, ok := other.Symbols[name]; !ok || b-other.Start != a-self.Start {
			t.Errorf("%s: +%#x here, +%#x in the child", name, a-self.Start, b-other.Start)
		}
	}
}

func TestAProcessThatIsGoneSaysSo(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(cmd.Process.Pid); err == nil {
		t.Fatal("read the vDSO of a process that exited")
	}
}

func TestSymbolsRefuseWhatIsNotAVDSO(t *testing.T) {
	for name, img := range map[string][]byte{
		"empty":           nil,
		"not an ELF":      []byte("hello"),
		"a truncated ELF": append([]byte("\x7fELF\x02\x01\x01"), bytes.Repeat([]byte{0}, 20)...),
	} {
		if _, err := symbols(img, 0x1000); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzSymbols: no image, however corrupt, makes the reader panic; the
// seed is this process's own vDSO.
func FuzzSymbols(f *testing.F) {
	if self, err := Read(os.Getpid()); err == nil {
		mem, err := os.Open("/proc/self/mem")
		if err == nil {
			img := make([]byte, self.End-self.Start)
			if _, err := mem.ReadAt(img, int64(self.Start)); err == nil {
				f.Add(img)
			}
			mem.Close()
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, img []byte) {
		_, _ = symbols(img, 0x7f0000000000)
	})
}
