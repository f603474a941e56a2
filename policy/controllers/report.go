package controllers

import (
	"context"
	"encoding/json"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// newCounter makes a counter and registers it when reg is set.
func newCounter(reg prometheus.Registerer, name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// maxNote is events.k8s.io/v1's limit on an Event's note.
const maxNote = 1024

// reportOnce is how the leader's reporters tell a pod's owner something:
// the pod is marked first (annotation=value), so that the report is made
// once even across leader changes, then a Warning Event and the counter. A
// pod already gone is not an error.
func reportOnce(ctx context.Context, c client.Client, rec events.EventRecorder, counter prometheus.Counter,
	pod *corev1.Pod, annotation, value, reason, action, note string) error {
	body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{annotation: value}}})
	if err := c.Patch(ctx, pod, client.RawPatch(types.MergePatchType, body)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	if len(note) > maxNote {
		note = note[:maxNote]
	}
	rec.Eventf(pod, nil, corev1.EventTypeWarning, reason, action, "%s", note)
	if counter != nil {
		counter.Inc()
	}
	return nil
}
