package policy

import (
	"crypto/sha256"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// SpecCache remembers successful parses by the annotation's digest. A
// Deployment's replicas carry the same annotation, and the YAML parser is
// the costliest step of a decision, so a rollout parses once. Cached specs
// are shared: callers must treat them as read-only.
//
// Errors are not cached and keys are digests, not the text: anyone who may
// send an AdmissionReview (or create a pod with --dry-run=server) chooses
// the annotation, and 1,024 distinct 32 KB invalid ones kept 152 MiB per
// replica (text as key, the error quoting it) against a 256 Mi limit.
type SpecCache struct {
	lru *countedLRU[parsed]
}

// Register exposes faultline_spec_cache_requests_total{result="hit|miss"}.
func (s *SpecCache) Register(reg prometheus.Registerer) error {
	if s == nil {
		return nil
	}
	return s.lru.register(reg, "faultline_spec_cache_requests_total",
		"Fault annotation parses served from the cache (hit) or parsed anew (miss).")
}

type parsed struct {
	spec *v1alpha1.FaultSpec
}

// NewSpecCache keeps up to size distinct annotations; nil (no caching) for
// a non-positive size.
func NewSpecCache(size int) *SpecCache {
	l := newCountedLRU[parsed](size)
	if l == nil {
		return nil
	}
	return &SpecCache{lru: l}
}

// Parse is v1alpha1.ParseFaultSpec for the faults annotation, cached.
func (s *SpecCache) Parse(raw string) (*v1alpha1.FaultSpec, field.ErrorList) {
	if s == nil {
		return v1alpha1.ParseFaultSpec(raw, v1alpha1.AnnotationPath(v1alpha1.AnnotationFaults))
	}
	sum := sha256.Sum256([]byte(raw))
	key := string(sum[:])
	if p, ok := s.lru.get(key); ok {
		return p.spec, nil
	}
	spec, errs := v1alpha1.ParseFaultSpec(raw, v1alpha1.AnnotationPath(v1alpha1.AnnotationFaults))
	if len(errs) == 0 {
		s.lru.add(key, parsed{spec: spec})
	}
	return spec, errs
}
