//go:build !amd64

package vdso

import "errors"

// ErrUnsupported: the patch is x86-64 code; elsewhere clock faults reach
// dynamically linked programs through the shim only.
var ErrUnsupported = errors.New("vDSO patching is implemented for x86-64 only")

// Patched is never made on this architecture.
type Patched struct{ Pid int }

// Patch says the architecture is not supported.
func Patch(int, Params) (*Patched, error) { return nil, ErrUnsupported }

func (*Patched) Update(Params) error { return ErrUnsupported }
func (*Patched) Restore() error      { return nil }
func (*Patched) Alive() bool         { return false }
