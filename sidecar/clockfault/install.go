package clockfault

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// ShimName is the file the webhook's LD_PRELOAD points at.
const ShimName = v1alpha1.ShimName

// InstallShim copies the shim into dir (the shared volume) atomically, so an
// app container never maps a half-written library.
func InstallShim(src, dir string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("time shim: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, ".shim-*")
	if err != nil {
		return fmt.Errorf("time shim: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("copying time shim: %w", err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, ShimName))
}
