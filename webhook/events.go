package webhook

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Event reasons on pods.
const (
	EventInjected    = "FaultsInjected"
	EventNotInjected = "FaultsNotInjected"
)

// maxNote is events.k8s.io/v1's limit on an Event's note.
const maxNote = 1024

// MaxPending bounds the decisions waiting for their pod. Anyone who can
// reach the webhook can send AdmissionReviews for pods that will never
// exist; without a bound each kept a decision for a minute, and expiring
// them cost a pass over all at every admission.
const MaxPending = 4096

// Notifier reports decisions as Events on the pods they were about. At
// admission a pod has no UID and often no name, so the handler leaves the
// decision here and the pod informer, seeing the pod created, matches it:
// by name when the pod had one, otherwise by generateName, labels and
// whether it was injected (siblings of one ReplicaSet share these, and so
// do their decisions, except blast radius, which the injected flag tells
// apart). Only the replica that admitted a pod holds its decision, so each
// Event is emitted once, and a dry-run admission, which creates no pod,
// emits none.
type Notifier struct {
	Recorder events.EventRecorder
	// TTL drops decisions whose pod never appeared (another webhook denied
	// it, or the request timed out).
	TTL time.Duration
	Now func() time.Time

	mu      sync.Mutex
	pending map[string][]expected
	count   int
	swept   time.Time
}

type expected struct {
	labels    [32]byte // digest: the sender chooses the labels, and their size
	injected  bool
	eventtype string
	reason    string
	note      string
	at        time.Time
}

var _ toolscache.ResourceEventHandler = (*Notifier)(nil)

// NewNotifier keeps decisions for up to ttl.
func NewNotifier(r events.EventRecorder, ttl time.Duration) *Notifier {
	return &Notifier{Recorder: r, TTL: ttl, Now: time.Now, pending: map[string][]expected{}}
}

func pendingKey(namespace, name, generateName string) string {
	if name != "" {
		return namespace + "/" + name
	}
	return namespace + "/" + generateName + "*"
}

// Expect records a decision worth telling the pod's owner: every injection,
// and every refusal with a reason marked Notify (routine skips stay quiet).
func (n *Notifier) Expect(pod *corev1.Pod, d policy.Decision) {
	if n == nil || (!d.Inject && len(d.Warnings("")) == 0) {
		return
	}
	e := expected{labels: labelDigest(pod.Labels), injected: d.Inject, eventtype: corev1.EventTypeWarning,
		reason: EventNotInjected, note: "not injected: " + d.Message(), at: n.Now()}
	if d.Inject {
		what := "injected"
		if d.Spec != nil {
			what += " " + strings.Join(d.Spec.Kinds(), ", ")
		}
		e.eventtype, e.reason, e.note = corev1.EventTypeNormal, EventInjected, what+": "+d.Message()
	}
	if len(e.note) > maxNote {
		e.note = e.note[:maxNote-3] + "..."
	}
	// The owning workload hears at once, from this replica (Linkerd does
	// the same): if the replica restarts before the pod exists, the pod's
	// own Event is lost, this one is not. Identical notes on one owner are
	// aggregated by the recorder into one Event with a count.
	if owner := controllerOf(pod); owner != nil {
		n.Recorder.Eventf(owner, nil, e.eventtype, e.reason, "Admit", "pod %s: %s", podName(pod), e.note)
	}
	k := pendingKey(pod.Namespace, pod.Name, pod.GenerateName)
	n.mu.Lock()
	defer n.mu.Unlock()
	if now := n.Now(); now.Sub(n.swept) > time.Second {
		n.expire()
		n.swept = now
	}
	if n.count >= MaxPending {
		return // the Event is lost; the warning and the metric still tell
	}
	n.pending[k] = append(n.pending[k], e)
	n.count++
}

func (n *Notifier) expire() {
	n.count = 0
	for k, es := range n.pending {
		fresh := es[:0]
		for _, e := range es {
			if n.Now().Sub(e.at) < n.TTL {
				fresh = append(fresh, e)
			}
		}
		if len(fresh) == 0 {
			delete(n.pending, k)
		} else {
			n.pending[k] = fresh
		}
		n.count += len(fresh)
	}
}

// Pending is how many decisions wait for their pod.
func (n *Notifier) Pending() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.count
}

// OnAdd emits the Event of a newly created pod's decision. Pods in the
// informer's initial list were admitted before this process started.
func (n *Notifier) OnAdd(obj any, initialList bool) {
	m, ok := obj.(metav1.Object)
	if !ok || initialList {
		return
	}
	_, injected := m.GetAnnotations()[v1alpha1.AnnotationStatus]
	e, ok := n.take(m, injected)
	if !ok {
		return
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: m.GetNamespace(), Name: m.GetName(), UID: m.GetUID()}}
	n.Recorder.Eventf(pod, nil, e.eventtype, e.reason, "Admit", "%s", e.note)
}

func (n *Notifier) OnUpdate(_, _ any) {}

func (n *Notifier) OnDelete(_ any) {}

// take removes and returns the oldest decision that matches m.
func (n *Notifier) take(m metav1.Object, injected bool) (expected, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, k := range []string{pendingKey(m.GetNamespace(), m.GetName(), ""), pendingKey(m.GetNamespace(), "", m.GetGenerateName())} {
		es := n.pending[k]
		for i, e := range es {
			if e.injected == injected && e.labels == labelDigest(m.GetLabels()) {
				n.pending[k] = append(es[:i:i], es[i+1:]...)
				n.count--
				if len(n.pending[k]) == 0 {
					delete(n.pending, k)
				}
				return e, true
			}
		}
	}
	return expected{}, false
}

// labelDigest identifies a label set in 32 bytes whatever its size.
func labelDigest(l map[string]string) [32]byte {
	keys := slices.Sorted(maps.Keys(l))
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(l[k]), l[k])
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// controllerOf is the pod's controlling owner as an object an Event can be
// about, or nil.
func controllerOf(pod *corev1.Pod) *metav1.PartialObjectMetadata {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return nil
	}
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: ref.APIVersion, Kind: ref.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: ref.Name, Namespace: pod.Namespace, UID: ref.UID}}
}
