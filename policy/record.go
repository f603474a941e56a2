package policy

import (
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// PolicyRef names one ChaosPolicy as it was when it admitted a pod. The UID
// tells a policy deleted and created again under the same name from the one
// that admitted the pod: the new one did not, and its arrival must not
// resume what the deletion stopped.
type PolicyRef struct {
	Name       string    `json:"name"`
	UID        types.UID `json:"uid"`
	Generation int64     `json:"generation"`
}

// RefOf is how a policy is recorded on the pods it admits.
func RefOf(p *v1alpha1.ChaosPolicy) PolicyRef {
	return PolicyRef{Name: p.Name, UID: p.UID, Generation: p.Generation}
}

// EncodeAdmitted is the value of faultline.dev/admitted.
func EncodeAdmitted(refs []PolicyRef) string {
	b, _ := json.Marshal(refs) // strings and ints: cannot fail
	return string(b)
}

// AdmittedBy reads the record the webhook wrote at admission.
func AdmittedBy(pod *corev1.Pod) ([]PolicyRef, error) { return AdmittedFrom(pod.Annotations) }

// AdmittedFrom reads the record from a pod's annotations.
func AdmittedFrom(annotations map[string]string) ([]PolicyRef, error) {
	raw, ok := annotations[v1alpha1.AnnotationAdmitted]
	if !ok {
		return nil, errors.New("it has no " + v1alpha1.AnnotationAdmitted + " record (injected by an older faultline, or the record was removed)")
	}
	var refs []PolicyRef
	if err := json.Unmarshal([]byte(raw), &refs); err != nil || len(refs) == 0 {
		return nil, fmt.Errorf("its %s record %.80q is not a list of policies", v1alpha1.AnnotationAdmitted, raw)
	}
	return refs, nil
}

// runningSpec is the spec the pod's agent runs: the FAULTLINE_SPEC of
// faultline's init container. Container env cannot change once the pod
// exists, so unlike any annotation it is what the kernel gets.
func runningSpec(pod *corev1.Pod) (*v1alpha1.FaultSpec, error) {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.Name != v1alpha1.InitContainerName && c.Name != v1alpha1.AgentContainerName {
				continue
			}
			for _, e := range c.Env {
				if e.Name != v1alpha1.EnvSpec {
					continue
				}
				spec, errs := v1alpha1.ParseFaultSpec(e.Value, nil)
				if len(errs) > 0 {
					return nil, fmt.Errorf("container %s: %s: %v", c.Name, v1alpha1.EnvSpec, errs.ToAggregate())
				}
				return spec, nil
			}
		}
	}
	return nil, fmt.Errorf("no faultline container carries %s", v1alpha1.EnvSpec)
}
