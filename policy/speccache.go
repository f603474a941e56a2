package policy

import (
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// SpecCache remembers parse results by annotation text. A Deployment's
// replicas carry the same annotation, and the YAML parser is the costliest
// step of a decision, so a rollout parses once. Cached specs are shared:
// callers must treat them as read-only.
type SpecCache struct {
	c      *lru.Cache[string, parsed]
	hits   prometheus.Counter
	misses prometheus.Counter
}

// Register exposes faultline_spec_cache_requests_total{result="hit|miss"}.
func (s *SpecCache) Register(reg prometheus.Registerer) error {
	if s == nil {
		return nil
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "faultline_spec_cache_requests_total",
		Help: "Fault annotation parses served from the cache (hit) or parsed anew (miss).",
	}, []string{"result"})
	if err := reg.Register(vec); err != nil {
		return err
	}
	s.hits, s.misses = vec.WithLabelValues("hit"), vec.WithLabelValues("miss")
	return nil
}

type parsed struct {
	spec *v1alpha1.FaultSpec
	errs field.ErrorList
}

// NewSpecCache keeps up to size distinct annotations.
func NewSpecCache(size int) *SpecCache {
	c, err := lru.New[string, parsed](size)
	if err != nil {
		// Only a non-positive size fails; fall back to no caching.
		return nil
	}
	return &SpecCache{c: c}
}

// Parse is v1alpha1.ParseFaultSpec for the faults annotation, cached.
func (s *SpecCache) Parse(raw string) (*v1alpha1.FaultSpec, field.ErrorList) {
	if s == nil {
		return v1alpha1.ParseFaultSpec(raw, v1alpha1.AnnotationPath(v1alpha1.AnnotationFaults))
	}
	if p, ok := s.c.Get(raw); ok {
		if s.hits != nil {
			s.hits.Inc()
		}
		return p.spec, p.errs
	}
	if s.misses != nil {
		s.misses.Inc()
	}
	spec, errs := v1alpha1.ParseFaultSpec(raw, v1alpha1.AnnotationPath(v1alpha1.AnnotationFaults))
	s.c.Add(raw, parsed{spec: spec, errs: errs})
	return spec, errs
}
