package policy

import (
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// countedLRU is an LRU whose lookups are counted as hits and misses, the
// shared mechanics of the spec and decision caches.
type countedLRU[V any] struct {
	c            *lru.Cache[string, V]
	hits, misses prometheus.Counter
}

// newCountedLRU returns nil for a non-positive size: no caching.
func newCountedLRU[V any](size int) *countedLRU[V] {
	c, err := lru.New[string, V](size)
	if err != nil {
		return nil
	}
	return &countedLRU[V]{c: c}
}

// register exposes name{result="hit|miss"}.
func (l *countedLRU[V]) register(reg prometheus.Registerer, name, help string) error {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"result"})
	if err := reg.Register(vec); err != nil {
		return err
	}
	l.hits, l.misses = vec.WithLabelValues("hit"), vec.WithLabelValues("miss")
	return nil
}

func (l *countedLRU[V]) get(key string) (V, bool) {
	v, ok := l.c.Get(key)
	c := l.misses
	if ok {
		c = l.hits
	}
	if c != nil {
		c.Inc()
	}
	return v, ok
}

func (l *countedLRU[V]) add(key string, v V) { l.c.Add(key, v) }
