package sidecar

import (
	"fmt"
	"os"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// EnvSpec carries the admitted spec as JSON when no --spec-file is given.
const EnvSpec = v1alpha1.EnvSpec

// LoadSpec reads and strictly re-validates the spec: the agent trusts the
// webhook, but a hand-edited pod must not reach the kernel unchecked.
func LoadSpec(file string) (*v1alpha1.FaultSpec, error) {
	var data string
	var root *field.Path
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading spec: %w", err)
		}
		data, root = string(b), field.NewPath(file)
	} else {
		v, ok := os.LookupEnv(EnvSpec)
		if !ok {
			return nil, fmt.Errorf("no spec: pass --spec-file or set %s", EnvSpec)
		}
		data, root = v, field.NewPath(EnvSpec)
	}
	spec, errs := v1alpha1.ParseFaultSpec(data, root)
	if len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	return spec, nil
}
