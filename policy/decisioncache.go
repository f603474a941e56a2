package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// DecisionCache remembers verdicts (what the policies say before blast
// radius) for recent inputs. A rollout admits many pods with the same
// labels and annotation, so most admissions after the first are hits.
//
// The key covers everything a verdict depends on: each policy's name, UID
// and generation (the API server bumps generation on every spec change,
// including paused, and not on status updates), the namespace and its
// labels, the pod's labels, the admitted spec, and the minute (windows have
// minute resolution). Policies without a generation (offline files) must
// not be evaluated through a cache.
type DecisionCache struct {
	lru *countedLRU[verdict]
}

// NewDecisionCache keeps up to size verdicts; nil for a non-positive size.
func NewDecisionCache(size int) *DecisionCache {
	l := newCountedLRU[verdict](size)
	if l == nil {
		return nil
	}
	return &DecisionCache{lru: l}
}

// Register exposes faultline_decision_cache_requests_total{result="hit|miss"}.
func (d *DecisionCache) Register(reg prometheus.Registerer) error {
	if d == nil {
		return nil
	}
	return d.lru.register(reg, "faultline_decision_cache_requests_total",
		"Policy verdicts served from the cache (hit) or evaluated anew (miss).")
}

// verdict returns the cached verdict for these inputs, or evaluates and
// caches it; the key is hashed once either way.
func (d *DecisionCache) verdict(all []v1alpha1.ChaosPolicy, req *Request, spec *v1alpha1.FaultSpec, now time.Time) verdict {
	if d == nil {
		return evaluate(all, req, spec, now)
	}
	k, ok := decisionKey(all, req, spec, now)
	if !ok {
		return evaluate(all, req, spec, now)
	}
	if v, hit := d.lru.get(k); hit {
		return v
	}
	v := evaluate(all, req, spec, now)
	d.lru.add(k, v)
	return v
}

// decisionKey hashes the verdict's inputs; false when the spec cannot be
// encoded (then the verdict is not cached).
func decisionKey(all []v1alpha1.ChaosPolicy, req *Request, spec *v1alpha1.FaultSpec, now time.Time) (string, bool) {
	h := sha256.New()
	for i := range all {
		writeField(h, all[i].Name)
		writeField(h, string(all[i].UID))
		writeInt(h, all[i].Generation)
		// A status condition, so not in the generation.
		writeField(h, AbortUnknown(&all[i]))
	}
	writeField(h, "")
	writeField(h, req.Pod.Namespace)
	writeMap(h, req.NamespaceLabels)
	writeMap(h, req.Pod.Labels)
	b, err := json.Marshal(spec)
	if err != nil {
		return "", false
	}
	writeField(h, string(b))
	writeInt(h, now.Unix()/60)
	return hex.EncodeToString(h.Sum(nil)), true
}

// writeField is length-prefixed so that no two inputs hash alike by
// shifting bytes between fields.
func writeField(h hash.Hash, s string) {
	writeInt(h, int64(len(s)))
	h.Write([]byte(s))
}

func writeInt(h hash.Hash, n int64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	h.Write(b[:])
}

func writeMap(h hash.Hash, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	writeInt(h, int64(len(keys)))
	for _, k := range keys {
		writeField(h, k)
		writeField(h, m[k])
	}
}

// byName returns the policies sorted by name, copying only when they are not.
func byName(all []v1alpha1.ChaosPolicy) []v1alpha1.ChaosPolicy {
	cmp := func(a, b v1alpha1.ChaosPolicy) int { return strings.Compare(a.Name, b.Name) }
	if slices.IsSortedFunc(all, cmp) {
		return all
	}
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, cmp)
	return sorted
}
