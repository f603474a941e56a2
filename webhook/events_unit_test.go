package webhook

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// How decisions are matched to the pods they were about, which have no UID
// at admission and often no name.
func TestNotifierMatchesDecisionsToTheirPods(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	web := map[string]string{"app": "web"}
	admitted := func(generateName string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", GenerateName: generateName, Labels: web}}
	}
	created := func(name string, injected bool) *metav1.PartialObjectMetadata {
		m := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, GenerateName: "web-", Labels: web}}
		if injected {
			m.Annotations = map[string]string{v1alpha1.AnnotationStatus: "{}"}
		}
		return m
	}
	inject := policy.Decision{Inject: true, Reasons: []policy.Reason{{Code: policy.CodeInjected, Message: "allowed by ChaosPolicy shop"}}}
	full := policy.Decision{Reasons: []policy.Reason{{Code: policy.CodeBlastRadius, Policy: "shop", Message: "blast radius full", Notify: true}}}
	routine := policy.Skip(policy.CodeNotOptedIn, "not opted in", false)

	cases := []struct {
		name string
		run  func(n *Notifier)
		want []string // Events, in order
		left int      // decisions still pending
	}{
		{name: "siblings of one ReplicaSet get their own decisions, told apart by injected or not",
			run: func(n *Notifier) {
				n.Expect(admitted("web-"), inject)
				n.Expect(admitted("web-"), full)
				n.OnAdd(created("web-b", false), false)
				n.OnAdd(created("web-a", true), false)
			},
			want: []string{"Warning FaultsNotInjected not injected: policy shop: blast radius full", "Normal FaultsInjected injected: allowed by ChaosPolicy shop"}},
		{name: "routine skips are not worth an Event",
			run: func(n *Notifier) {
				n.Expect(admitted("web-"), routine)
				n.OnAdd(created("web-a", false), false)
			}},
		{name: "pods listed when the informer starts were admitted by an earlier process",
			run: func(n *Notifier) {
				n.Expect(admitted("web-"), full)
				n.OnAdd(created("web-a", false), true)
			}, left: 1},
		{name: "a decision whose pod never appears expires",
			run: func(n *Notifier) {
				n.Expect(admitted("web-"), full)
				n.Now = func() time.Time { return now.Add(2 * time.Minute) }
				n.Expect(admitted("other-"), full) // expiry runs on the next Expect
				n.OnAdd(created("web-a", false), false)
			}, left: 1},
		{name: "a pod with other labels is not a match",
			run: func(n *Notifier) {
				n.Expect(admitted("web-"), full)
				p := created("web-a", false)
				p.Labels = map[string]string{"app": "canary"}
				n.OnAdd(p, false)
			}, left: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := events.NewFakeRecorder(10)
			n := NewNotifier(rec, time.Minute)
			n.Now = func() time.Time { return now }
			c.run(n)
			close(rec.Events)
			var got []string
			for e := range rec.Events {
				got = append(got, e)
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("Events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if n.Pending() != c.left {
				t.Errorf("%d decisions pending, want %d", n.Pending(), c.left)
			}
		})
	}
}
